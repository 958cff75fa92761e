"""wuzapi (asternic/wuzapi, whatsmeow) adapter.

Auth header `token: <user token>`: in wuzapi a user *is* one WhatsApp instance, so one adapter object
serves one instance (`instance_ref` only names it in errors). Sends are `POST /chat/send/*` with
`Phone` (digits or a group JID); media travel as data URLs (wuzapi does not fetch URLs itself, so the
adapter downloads a URL within a size limit and inlines it). The client may choose the message `Id` on
text, image, video, audio and document sends, which makes the id known before the call (a reaction's
`Id` names its target). wuzapi has no lookup of sent messages, so a lost answer cannot be reconciled.
Request shapes: asternic/wuzapi `handlers.go` (SendImage, SendVideo, SendDocument, SendAudio, React).

Answers: `{code, data: {Details, Id, Timestamp}, success}`; errors `{code, error, success: false}`.
The send itself fails as 500 "Error sending message: <whatsmeow error>" (a time-lock reads "server
returned error 463", whatsmeow `send.go`); that 500 is AMBIGUOUS unless it names WhatsApp's refusal.
Other 500s (upload, thumbnail) happen before anything is sent and are TRANSIENT.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, ClassVar

import aiohttp
from yarl import URL

from libs.providers.base import (
    HttpFailure,
    SpecificRule,
    dig,
    error_message_of,
    non_empty_str,
)
from libs.providers.media import DEFAULT_MAX_MEDIA_BYTES, DownloadedMedia, MediaFetcher, as_media_timeout
from libs.providers.port import (
    MediaKind,
    ProviderError,
    Restriction,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
)
from libs.providers.sessions import (
    HttpSessions,
    PairingCode,
    QrCode,
    SessionStatus,
    SessionWebhook,
    check_ref,
    pairing_phone,
    png_of,
    says,
    session_call,
    status_via_probe,
    unexpected,
)

# kind -> (endpoint, body field, the media family wuzapi's data-URL check wants; None = any type).
_MEDIA = {
    MediaKind.IMAGE: ("image", "Image", "image/"),
    MediaKind.VIDEO: ("video", "Video", "video/"),
    MediaKind.DOCUMENT: ("document", "Document", None),
}
# handlers.go SendDocument accepts only this prefix; the real type travels in `MimeType`.
_DOCUMENT_PREFIX = "application/octet-stream"
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_OGG_MAGIC = b"OggS"
_REMOVE_REACTION = "remove"
# The events a session subscribes to: every one (the gateway ignores what it does not read).
_WUZAPI_EVENTS = ("All",)
# handlers.go (79ee4cd): 500s answered before the message is built and sent.
_PRE_SEND_500 = (
    "failed to upload file",
    "could not decode image",
    "could not create temp file",
    "failed to encode jpeg",
    "failed to read",
)  # handlers.go React: the literal "remove" sends an empty reaction


def wuzapi_rule(failure: HttpFailure) -> ProviderError | None:
    """wuzapi's error texts, which are whatsmeow's errors passed through."""
    common = failure.origin(WuzapiProvider.name)
    text = failure.lower_text()
    if "no session" in text or "not connected" in text:
        return ProviderError.restricted(
            Restriction.DISCONNECTED, "no_session", "wuzapi instance not connected", **common
        )
    if "not logged in" in text or "device jid" in text:
        return ProviderError.restricted(
            Restriction.LOGGED_OUT, "not_logged_in", "wuzapi instance logged out", **common
        )
    message = error_message_of(failure.body).strip().lower()
    if failure.status == 500 and message.startswith(_PRE_SEND_500):
        return ProviderError.transient("pre_send_failure", "wuzapi failed before sending", **common)
    return None


def _data_url(mimetype: str, data_base64: str) -> str:
    return f"data:{mimetype};base64,{data_base64}"


def _pick_mimetype(downloaded: str, requested: str, family: str | None) -> str:
    """The server's declared type when it says something specific (and of the right family), else ours."""
    if downloaded not in _GENERIC_TYPES and (family is None or downloaded.startswith(family)):
        return downloaded
    return requested


def _filename_of(url: str | None) -> str:
    name = PurePosixPath(URL(url).path).name if url else ""
    return name or "document"


class WuzapiProvider(HttpSessions):
    """wuzapi adapter for one wuzapi user (= one WhatsApp instance); `api_key` is that user's token.

    Media given by URL are downloaded on the shared session (at most `max_media_bytes`, within
    `media_timeout`) and sent inline, because wuzapi only reads data URLs.
    """

    name = "WUZAPI"
    specific_rule: ClassVar[SpecificRule | None] = wuzapi_rule

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout | float | None = None,
        max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES,
        media_timeout: aiohttp.ClientTimeout | float | None = None,
    ) -> None:
        super().__init__(base_url=base_url, api_key=api_key, session=session, timeout=timeout)
        self._media = MediaFetcher(
            session, self.name, max_bytes=max_media_bytes, timeout=as_media_timeout(media_timeout)
        )

    def auth_headers(self) -> dict[str, str]:
        return {"token": self._api_key}

    async def _send(
        self, path: tuple[str, ...], body: dict[str, Any], client_message_id: str | None = None
    ) -> SentMessage:
        if client_message_id is not None:
            body["Id"] = client_message_id  # wuzapi sends under the id we chose, on every type
        return await self.post_for_message_id(
            self.url(*path), body, lambda data: non_empty_str(dig(data, "data", "Id"))
        )

    async def _download(self, url: str) -> DownloadedMedia:
        # Runs before any call to wuzapi: a failed download sent nothing, so its TRANSIENT is a safe retry.
        return await self._media.fetch(url)

    def _unsupported(self, message: str) -> ProviderError:
        return ProviderError.permanent("unsupported_media_type", message, provider=self.name)

    async def send_text(self, request: SendTextRequest) -> SentMessage:
        body: dict[str, Any] = {"Phone": request.recipient, "Body": request.text}
        return await self._send(("chat", "send", "text"), body, request.client_message_id)

    async def send_media(self, request: SendMediaRequest) -> SentMessage:
        endpoint, field, family = _MEDIA[request.kind]
        mimetype = request.mimetype
        if request.data_base64 is not None:
            data = request.data_base64
        else:
            assert request.url is not None  # the request guarantees exactly one source
            downloaded = await self._download(request.url)
            data = downloaded.data_base64
            mimetype = _pick_mimetype(downloaded.content_type, request.mimetype, family)
            if family is not None and not mimetype.startswith(family):
                # wuzapi would answer 400 after we uploaded it all; refuse it here instead.
                raise self._unsupported(f"{request.kind.value.lower()} must be {family}*")
        body: dict[str, Any] = {"Phone": request.recipient}
        if request.kind is MediaKind.DOCUMENT:
            body[field] = _data_url(_DOCUMENT_PREFIX, data)
            body["MimeType"] = mimetype  # read by newer wuzapi; older ones sniff the bytes
            body["FileName"] = request.filename or _filename_of(request.url)
        else:
            body[field] = _data_url(mimetype, data)
        if request.caption:
            body["Caption"] = request.caption
        return await self._send(("chat", "send", endpoint), body, request.client_message_id)

    async def send_audio(self, request: SendAudioRequest) -> SentMessage:
        if request.data_base64 is not None:
            data = request.data_base64
        else:
            assert request.url is not None  # the request guarantees exactly one source
            downloaded = await self._download(request.url)
            if not downloaded.head.startswith(_OGG_MAGIC):
                # A voice note must be OGG/Opus; wuzapi labels whatever it gets as such.
                raise self._unsupported("voice notes must be OGG/Opus")
            data = downloaded.data_base64
        # wuzapi checks the "data:audio/ogg" prefix itself; a ";codecs=opus" parameter breaks its parser.
        body: dict[str, Any] = {"Phone": request.recipient, "Audio": _data_url("audio/ogg", data)}
        return await self._send(("chat", "send", "audio"), body, request.client_message_id)

    async def send_reaction(self, request: SendReactionRequest) -> SentMessage:
        target = f"me:{request.message_id}" if request.target_from_me else request.message_id
        # An empty Body is refused ("Missing Body in Payload"); removal is the literal "remove".
        emoji = request.emoji or _REMOVE_REACTION
        body = {"Phone": request.recipient, "Body": emoji, "Id": target}
        await self.request_json("POST", self.url("chat", "react"), body=body)
        # wuzapi answers with the *target's* id (the reaction is sent under it), not a new message id:
        # recording it would map the target's later receipts onto this job.
        return SentMessage("")

    # --- sessions (ProviderSessions) ------------------------------------------------------------------
    #
    # asternic/wuzapi at 79ee4cd8: routes.go, handlers.go (Connect, Disconnect, Logout, GetQR,
    # PairPhone, GetStatus, SetWebhook), wmiau.go (the QR is kept as a PNG data URL; its text is not
    # served). The adapter's token is the wuzapi user, which is the session: `instance_ref` only names it.
    # `POST /session/hmac/config {hmac_key}` (the webhook signature) comes from later wuzapi releases.

    offers_pairing_code: ClassVar[bool] = True

    async def start_session(self, instance_ref: str) -> SessionStatus:
        """`POST /session/connect {Subscribe: ["All"], Immediate: true}` (without `Immediate` wuzapi
        holds the answer 10 s); a running client (500 "Already Connected") is left as it is."""
        check_ref(instance_ref)
        body = {"Subscribe": list(_WUZAPI_EVENTS), "Immediate": True}
        await session_call(
            self, "POST", self.url("session", "connect"), body=body, done_if=says("already connected")
        )
        return await status_via_probe(self, instance_ref)

    async def set_webhook(self, instance_ref: str, webhook: SessionWebhook) -> None:
        """`POST /webhook {webhookURL, events}`, then `POST /session/hmac/config {hmac_key}` so wuzapi
        signs every webhook (`x-hmac-signature`). A wuzapi without that route (404) would post unsigned
        webhooks the gateway refuses: PERMANENT "webhook_signing_unsupported"."""
        check_ref(instance_ref)
        if webhook.headers:
            raise ProviderError.permanent(
                "webhook_headers_unsupported", "wuzapi sends no custom webhook headers", provider=self.name
            )
        body = {"webhookURL": webhook.url, "events": list(webhook.events or _WUZAPI_EVENTS)}
        await session_call(self, "POST", self.url("webhook"), body=body)
        try:
            await session_call(
                self, "POST", self.url("session", "hmac", "config"), body={"hmac_key": webhook.secret}
            )
        except ProviderError as error:
            if error.status != 404:
                raise
            raise ProviderError.permanent(
                "webhook_signing_unsupported",
                "this wuzapi cannot sign webhooks (no /session/hmac/config)",
                status=404,
                provider=self.name,
            ) from error

    async def get_qr(self, instance_ref: str) -> QrCode | None:
        """`GET /session/qr` → `{QRCode: "data:image/png;base64,…"}` (empty before the first QR and after
        a QR timeout); 500 "Already Loggedin" when there is nothing to scan."""
        check_ref(instance_ref)
        answer = await session_call(self, "GET", self.url("session", "qr"), done_if=says("already loggedin"))
        image = dig(answer, "data", "QRCode")
        if answer is None or image == "":
            return None
        return QrCode(raw="", png=png_of(image, self.name))

    async def request_pairing_code(self, instance_ref: str, phone: str) -> PairingCode:
        """`POST /session/pairphone {Phone}` → `{LinkingCode}` (400 "Already paired" once logged in)."""
        check_ref(instance_ref)
        answer = await session_call(
            self, "POST", self.url("session", "pairphone"), body={"Phone": pairing_phone(phone)}
        )
        code = non_empty_str(dig(answer, "data", "LinkingCode"))
        if code is None:
            raise unexpected(self.name, "no linking code in the answer")
        return PairingCode(code)

    async def logout_session(self, instance_ref: str) -> None:
        """`POST /session/logout`; a client that is not logged in has nothing to log out. Without a
        running client (500 "No session") wuzapi cannot log the device out: RESTRICTED DISCONNECTED,
        start the session first."""
        check_ref(instance_ref)
        not_in = says("not logged in", "not connected")
        await session_call(self, "POST", self.url("session", "logout"), done_if=not_in)

    async def delete_session(self, instance_ref: str) -> None:
        """Log out, then `POST /session/disconnect`. The wuzapi user (the token) stays: only wuzapi's
        admin token can delete users."""
        check_ref(instance_ref)
        nothing_to_undo = says("no session", "not logged in", "not connected")
        for path in (("session", "logout"), ("session", "disconnect")):
            await session_call(self, "POST", self.url(*path), done_if=nothing_to_undo)
