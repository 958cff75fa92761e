"""The MessageSender port over libs.providers: job -> provider request, ProviderError -> JobError."""

from __future__ import annotations

from datetime import datetime

from executor_service.application.ports import SendReceipt
from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.outcome import ErrorClass, JobError, RestrictionKind, SendFailed
from executor_service.infrastructure.provider_directory import ProviderDirectory
from libs import tracing
from libs.providers.capabilities import LookupRequest, LookupResult, ProviderProfile
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
)
from libs.seedwork.clock import Clock
from libs.seedwork.shared_kernel import MessageType

_ERROR_CLASS = {
    ProviderErrorClass.TRANSIENT: ErrorClass.TRANSIENT,
    ProviderErrorClass.PERMANENT: ErrorClass.PERMANENT,
    ProviderErrorClass.RESTRICTED: ErrorClass.RESTRICTED,
    ProviderErrorClass.AMBIGUOUS: ErrorClass.AMBIGUOUS,
}

# A lookup error that will not change by asking again: the lookup proves nothing (review), not "later".
_FINAL_LOOKUP_ERRORS = frozenset({ProviderErrorClass.PERMANENT, ProviderErrorClass.RESTRICTED})
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
    """Sends through the adapter configured for the job's provider (and instance, for wuzapi tokens). The
    job's client message id (chosen at creation where the capability table says the provider keeps it)
    goes with every kind of send."""

    def __init__(self, directory: ProviderDirectory, clock: Clock) -> None:
        self._directory = directory
        self._clock = clock

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
        # The job was created by a consumer of this process (most often): its trace goes on here.
        with tracing.resumed(job.intent_id), tracing.span("executor send", attributes=_span_attributes(job)):
            try:
                sent = await _dispatch(adapter, job)
            except ProviderError as error:
                raise SendFailed(job_error_from(error, self._clock.now())) from error
        return SendReceipt(sent.provider_message_id)

    async def look_up(
        self, job: MessageExecutionJob, profile: ProviderProfile, *, sent_after: datetime
    ) -> LookupResult:
        adapter = self._adapter(job)
        request = LookupRequest(
            profile=profile,
            instance_ref=job.provider_instance_ref,
            recipient=job.message.recipient,
            message_type=job.message.type,
            client_message_id=job.client_message_id,
            sent_after=sent_after,
        )
        try:
            return await adapter.find_sent_message(request)
        except ProviderError as error:
            if error.error_class in _FINAL_LOOKUP_ERRORS:
                return LookupResult.inconclusive(error.code[:_MAX_CODE])
            raise SendFailed(job_error_from(error, self._clock.now())) from error


def _span_attributes(job: MessageExecutionJob) -> dict[str, str | int]:
    return {
        "whatlead.intent_id": job.intent_id,
        "whatlead.job_id": job.id,
        "whatlead.instance_id": job.instance_id,
        "whatlead.provider": job.provider.value,
        "whatlead.organization_id": job.organization_id,
        "whatlead.attempt": job.attempts,
    }


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
                    client_message_id=job.client_message_id,
                )
            )
        case MessageType.AUDIO:
            return await adapter.send_audio(
                SendAudioRequest(
                    instance_ref=ref,
                    recipient=recipient,
                    url=message.audio_url,
                    client_message_id=job.client_message_id,
                )
            )
        case MessageType.REACTION:
            return await adapter.send_reaction(
                SendReactionRequest(
                    instance_ref=ref,
                    recipient=recipient,
                    message_id=message.message_ref,
                    emoji=message.emoji,
                    target_from_me=False,
                    client_message_id=job.client_message_id,
                )
            )
    raise ProviderError.permanent("invalid_message", f"unknown message type {message.type}")
