"""wuzapi mode: the simulator also answers wuzapi's HTTP API, so the real `WuzapiProvider` talks to it.

Routes, request fields, checks, error texts and answers follow asternic/wuzapi at
79ee4cd87a867f3c905574e7a9057b4cb7dbb16c: `routes.go` (`/chat/send/text|image|video|audio|document`,
`/chat/react`, `/session/status`, all behind `authalice`), `handlers.go` (`SendMessage`, `SendImage`,
`SendVideo`, `SendAudio`, `SendDocument`, `React`, `GetStatus`, `Respond`, `validateMessageFields`).

- Auth: the `token` header (or `?token=`). A token bound to a session with the control field
  `wuzapi_token` names that session; any other token that is a valid session name is the session of that
  name (created on first use, like every session here). Anything else: 401 "Unauthorized".
- Answers: `{code, data: {Details: "Sent", Id, Timestamp}, success: true}`; errors
  `{code, error, success: false}` (`Respond` with an error).
- Every accepted send lands in the same ledger (`api` "wuzapi"; kinds text, image, video, document, voice,
  reaction) and gets the same acks as a WAHA send: the webhooks stay WAHA-shaped.
- The session's quirks and failures apply as they do to WAHA sends, answered in wuzapi's shape (TurboZap's
  wrapped 500 keeps TurboZap's body, whichever API).

Not modelled: wuzapi decodes images to build a thumbnail (500 on bytes that are not an image) and uploads
media to WhatsApp; here the data URL is only checked to decode.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from libs.provider_simulator.outcomes import Answer, Refusal, SendOutcome, turbozap_500_body

if TYPE_CHECKING:
    from libs.provider_simulator.server import ProviderSimulator, SimulatedSession

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SessionHandler = Callable[[web.Request, "SimulatedSession"], Awaitable[web.Response]]

# Paths served with wuzapi's token auth instead of WAHA's X-Api-Key.
WUZAPI_PREFIXES = ("/chat/", "/session/")

_PHONE = re.compile(r"^\+?(\d{6,20})$")
_JID = re.compile(r"^(\d{6,20}@s\.whatsapp\.net|\d{5,30}(-\d{5,20})?@g\.us|\d{6,20}@lid)$")
_DATA_URL = re.compile(r"^data:([^,]*),(.*)$", re.DOTALL)


class WuzapiError(Exception):
    """A refusal answered as wuzapi's `Respond(w, r, status, errors.New(text))`."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"code": status, "error": text, "success": False}
    return web.json_response(body, status=status, headers=headers)


def _sent(message_id: str) -> web.Response:
    # Go marshals whatsmeow's `resp.Timestamp` (time.Time) as RFC 3339.
    timestamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    data = {"Details": "Sent", "Id": message_id, "Timestamp": timestamp}
    return web.json_response({"code": 200, "data": data, "success": True})


def _recipient(phone: str, *, group_error: bool = False) -> str:
    """wuzapi's `parseJID`: digits (an optional "+") are a user on s.whatsapp.net, else a full JID."""
    match = _PHONE.match(phone)
    if match:
        return f"{match.group(1)}@s.whatsapp.net"
    if _JID.match(phone):
        return phone
    # React answers this text for any unparsable Phone; the send handlers the other one.
    raise WuzapiError(400, "Could not parse Group JID" if group_error else "Could not parse Phone")


def _decode(data_url: str) -> tuple[str, bytes]:
    """The media type and bytes of a data URL (dataurl.DecodeString); 400 when it does not decode."""
    match = _DATA_URL.match(data_url)
    if match is None:
        raise WuzapiError(400, "Could not decode base64 encoded data from payload")
    params, payload = match.group(1), match.group(2)
    parts = params.split(";")
    if "base64" in parts[1:]:
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise WuzapiError(400, "Could not decode base64 encoded data from payload") from None
    else:
        raw = payload.encode()
    return parts[0], raw


# Each media route: its body field, the prefix wuzapi checks (handlers.go, `t.Image[0:10] ==
# "data:image"` etc.), the error text when it does not match, and the ledger kind.
_MEDIA: dict[str, tuple[str, str, str, str]] = {
    "image": ("Image", "data:image", 'Image data should start with "data:image/png;base64,"', "image"),
    "video": ("Video", "data", 'Data should start with "data:mime/type;base64,"', "video"),
    "audio": ("Audio", "data:audio/ogg", 'Audio data should start with "data:audio/ogg;base64,"', "voice"),
    "document": (
        "Document",
        "data:application/octet-stream",
        'Document data should start with "data:application/octet-stream;base64,"',
        "document",
    ),
}


class WuzapiApi:
    """wuzapi's routes on the simulator's sessions, ledger and quirks."""

    def __init__(self, simulator: ProviderSimulator) -> None:
        self._sim = simulator

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/session/status", self._guarded(self._status)),
            web.post("/chat/send/text", self._guarded(self._send("text"))),
            *(web.post(f"/chat/send/{endpoint}", self._guarded(self._send(endpoint))) for endpoint in _MEDIA),
            web.post("/chat/react", self._guarded(self._react)),
        ]

    def _guarded(self, handler: SessionHandler) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            token = request.headers.get("token") or request.query.get("token", "")
            session = self._sim.session_of_token(token) if token else None
            if session is None:
                return _error(401, "Unauthorized")
            try:
                return await handler(request, session)
            except WuzapiError as exc:
                return _error(exc.status, exc.text)

        return handle

    async def _status(self, request: web.Request, session: SimulatedSession) -> web.Response:
        """`GetStatus`: {Connected, LoggedIn}. A stopped session is still logged in; a banned one is not."""
        connected = session.status == "WORKING"
        logged_in = session.status != "FAILED"
        data = {"Connected": connected, "LoggedIn": logged_in}
        return web.json_response({"code": 200, "data": data, "success": True})

    @staticmethod
    async def _payload(request: web.Request, fields: tuple[str, ...]) -> dict[str, Any]:
        """The JSON body; a body Go's decoder would refuse (not an object, a field of another type)
        is "Could not decode Payload"."""
        try:
            body = await request.json(loads=_loads)
        except ValueError:
            raise WuzapiError(400, "Could not decode Payload") from None
        if not isinstance(body, dict) or any(
            body.get(name) is not None and not isinstance(body[name], str) for name in fields
        ):
            raise WuzapiError(400, "Could not decode Payload")
        return body

    def _no_session(self, session: SimulatedSession) -> None:
        # wuzapi checks its client before reading the body: a stopped or banned session has none.
        if session.status != "WORKING":
            raise WuzapiError(500, "No session")

    def _send(self, endpoint: str) -> SessionHandler:
        async def handle(request: web.Request, session: SimulatedSession) -> web.Response:
            self._no_session(session)
            if endpoint == "text":
                body = await self._payload(request, ("Phone", "Body", "Id"))
                field, kind = "Body", "text"
            else:
                field, _, _, kind = _MEDIA[endpoint]
                extra = ("FileName", "MimeType") if endpoint == "document" else ()
                body = await self._payload(request, ("Phone", field, "Caption", "Id", *extra))
            phone = body.get("Phone") or ""
            if not phone:
                raise WuzapiError(400, "Missing Phone in Payload")
            value = body.get(field) or ""
            if not value:
                raise WuzapiError(400, f"Missing {field} in Payload")
            if endpoint == "document" and not body.get("FileName"):
                raise WuzapiError(400, "Missing FileName in Payload")
            chat = _recipient(phone)
            client_id = body.get("Id") or None
            details: dict[str, str] = {}
            content: str | None = value
            if endpoint != "text":
                content = body.get("Caption") or None
                details = self._media_details(endpoint, value, body)
            outcome = await self._sim.submit(
                session, chat, kind, client_id, content, api="wuzapi", details=details
            )
            return self._answer(session, kind, outcome, outcome.raw_id)

        return handle

    @staticmethod
    def _media_details(endpoint: str, value: str, body: dict[str, Any]) -> dict[str, str]:
        _, prefix, wrong_prefix, _ = _MEDIA[endpoint]
        if not value.startswith(prefix):
            raise WuzapiError(400, wrong_prefix)
        mimetype, raw = _decode(value)
        details = {"mimetype": mimetype, "bytes": str(len(raw))}
        if endpoint == "audio":
            details["mimetype"] = "audio/ogg; codecs=opus"  # SendAudio labels every voice note so (PTT)
        if endpoint == "document":
            # Newer wuzapi reads MimeType; the version checked sniffs the bytes (http.DetectContentType).
            details["mimetype"] = body.get("MimeType") or "application/octet-stream"
            details["filename"] = body["FileName"]
        return details

    async def _react(self, request: web.Request, session: SimulatedSession) -> web.Response:
        """`React`: {Phone, Body: emoji or "remove", Id: target, "me:" prefixed when the target is ours}.
        wuzapi answers with the target's id (the reaction is sent under it)."""
        self._no_session(session)
        body = await self._payload(request, ("Phone", "Body", "Id"))
        if not body.get("Phone"):
            raise WuzapiError(400, "Missing Phone in Payload")
        if not body.get("Body"):
            raise WuzapiError(400, "Missing Body in Payload")
        chat = _recipient(body["Phone"], group_error=True)
        target = body.get("Id") or ""
        if not target:
            raise WuzapiError(400, "Missing Id in Payload")
        from_me = target.startswith("me:")
        target = target.removeprefix("me:")
        reaction = "" if body["Body"] == "remove" else body["Body"]
        details = {"target": target, "from_me": str(from_me).lower(), "reaction": reaction}
        outcome = await self._sim.submit(
            session, chat, "reaction", None, reaction, api="wuzapi", details=details
        )
        return self._answer(session, "reaction", outcome, target)

    @staticmethod
    def _answer(
        session: SimulatedSession, kind: str, outcome: SendOutcome, sent_id: str | None
    ) -> web.Response:
        """A send's outcome in wuzapi's shapes: whatsmeow's errors behind "Error sending message: ";
        an accepted send answered with `sent_id`."""
        if outcome.refusal is Refusal.NOT_WORKING:
            return _error(500, "No session")
        if outcome.refusal is Refusal.TRANSIENT:
            headers = {"Retry-After": "1"} if outcome.status == 429 else None
            return _error(outcome.status, "simulated transient failure", headers)
        if outcome.refusal is Refusal.TIMELOCK:
            # whatsmeow send.go: fmt.Errorf("%w %d", ErrServerReturnedError, code)
            return _error(500, "Error sending message: server returned error 463")
        if outcome.refusal is Refusal.WRAPPED_500:
            return web.json_response(turbozap_500_body(kind), status=500)
        assert outcome.message is not None  # accepted
        if outcome.answer is Answer.ERROR_AFTER_SEND:
            # whatsmeow's ErrIQTimedOut: the message may well have left.
            return _error(500, "Error sending message: info query timed out")
        if outcome.answer is Answer.EMPTY_BODY:
            return web.Response(status=200)
        return _sent(sent_id or "")


def _loads(text: str) -> Any:
    return json.loads(text or "null")
