"""The MessageSender port over libs.providers: job -> provider request, ProviderError -> JobError."""

from __future__ import annotations

from datetime import datetime

from executor_service.application.ports import SendReceipt
from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.outcome import ErrorClass, JobError, RestrictionKind, SendFailed
from executor_service.infrastructure.provider_directory import ProviderDirectory
from libs.providers.port import (
    ErrorClass as ProviderErrorClass,
)
from libs.providers.port import (
    MediaKind,
    ProviderError,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
    WhatsAppProvider,
    new_client_message_id,
)
from libs.seedwork.clock import Clock
from libs.seedwork.shared_kernel import MessageType, Provider

_ERROR_CLASS = {
    ProviderErrorClass.TRANSIENT: ErrorClass.TRANSIENT,
    ProviderErrorClass.PERMANENT: ErrorClass.PERMANENT,
    ProviderErrorClass.RESTRICTED: ErrorClass.RESTRICTED,
    ProviderErrorClass.AMBIGUOUS: ErrorClass.AMBIGUOUS,
}

# Which sends carry the id we choose: WAHA and wuzapi accept one for texts only.
_CLIENT_ID_TYPES = frozenset({MessageType.TEXT})
_MAX_CODE = 64
_MAX_MESSAGE = 200


def job_error_from(error: ProviderError, now: datetime) -> JobError:
    """The provider's classification, in the executor's words (the only place this mapping lives)."""
    restriction = RestrictionKind(error.restriction.value) if error.restriction is not None else None
    return JobError(
        error_class=_ERROR_CLASS[error.error_class],
        code=error.code[:_MAX_CODE],
        message=error.message[:_MAX_MESSAGE],
        restriction=restriction,
        occurred_at=now,
        retry_after_seconds=error.retry_after,
    )


def _media_kind(mime_type: str) -> MediaKind:
    if mime_type.startswith("image/"):
        return MediaKind.IMAGE
    if mime_type.startswith("video/"):
        return MediaKind.VIDEO
    return MediaKind.DOCUMENT


class ProviderMessageSender:
    """Sends through the adapter configured for the job's provider (and instance, for wuzapi tokens)."""

    def __init__(self, directory: ProviderDirectory, clock: Clock) -> None:
        self._directory = directory
        self._clock = clock

    def client_message_id(self, *, provider: Provider, intent_id: str, message_type: str) -> str | None:
        caps = self._directory.capabilities(provider)
        if caps is None or not caps.supports_client_message_id or message_type not in _CLIENT_ID_TYPES:
            return None
        return new_client_message_id(intent_id)

    def can_look_up(self, provider: Provider) -> bool:
        caps = self._directory.capabilities(provider)
        return bool(caps is not None and caps.supports_lookup)

    def _adapter(self, job: MessageExecutionJob) -> WhatsAppProvider:
        adapter = self._directory.adapter(job.provider, job.provider_instance_ref)
        if adapter is None:
            raise SendFailed(
                JobError(
                    error_class=ErrorClass.PERMANENT,
                    code="provider_not_configured",
                    message=f"no {job.provider.value} endpoint is configured for this executor",
                    occurred_at=self._clock.now(),
                )
            )
        return adapter

    async def send(self, job: MessageExecutionJob) -> SendReceipt:
        adapter = self._adapter(job)
        try:
            sent = await _dispatch(adapter, job)
        except ProviderError as error:
            raise SendFailed(job_error_from(error, self._clock.now())) from error
        return SendReceipt(sent.provider_message_id)

    async def find_sent(self, job: MessageExecutionJob) -> SendReceipt | None:
        if job.client_message_id is None:
            return None  # nothing to look for: the provider never had an id of ours
        adapter = self._adapter(job)
        try:
            found = await adapter.find_sent_message(
                job.provider_instance_ref, job.client_message_id, recipient=job.message.recipient
            )
        except ProviderError as error:
            raise SendFailed(job_error_from(error, self._clock.now())) from error
        return SendReceipt(found.provider_message_id) if found is not None else None


async def _dispatch(adapter: WhatsAppProvider, job: MessageExecutionJob) -> SentMessage:
    message = job.message
    ref = job.provider_instance_ref
    recipient = message.recipient  # digits or a group JID: every adapter takes both
    match message.type:
        case MessageType.TEXT:
            return await adapter.send_text(
                SendTextRequest(
                    instance_ref=ref,
                    recipient=recipient,
                    text=message.text,
                    client_message_id=job.client_message_id,
                )
            )
        case MessageType.MEDIA:
            return await adapter.send_media(
                SendMediaRequest(
                    instance_ref=ref,
                    recipient=recipient,
                    kind=_media_kind(message.mime_type),
                    mimetype=message.mime_type,
                    url=message.media_url,
                    caption=message.caption or None,
                )
            )
        case MessageType.AUDIO:
            return await adapter.send_audio(
                SendAudioRequest(instance_ref=ref, recipient=recipient, url=message.audio_url)
            )
        case MessageType.REACTION:
            return await adapter.send_reaction(
                SendReactionRequest(
                    instance_ref=ref,
                    recipient=recipient,
                    message_id=message.message_ref,
                    emoji=message.emoji,
                    target_from_me=False,
                )
            )
    raise ProviderError.permanent("invalid_message", f"unknown message type {message.type}")
