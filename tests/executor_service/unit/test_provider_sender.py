"""The MessageSender adapter over a provider: our id on every kind of send, and lookups whose errors say
either "ask again later" or "this proves nothing"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from executor_service.domain.message import OutboundMessage
from executor_service.domain.outcome import ErrorClass, SendFailed
from executor_service.infrastructure.provider_directory import ProviderDirectory
from executor_service.infrastructure.provider_sender import ProviderMessageSender
from libs.providers.capabilities import LookupRequest, LookupResult, LookupVerdict, ProviderProfile
from libs.providers.port import (
    ProviderError,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
    WhatsAppProvider,
)
from libs.seedwork.clock import FakeClock
from libs.seedwork.shared_kernel import MessageType, Provider, ProviderEngine, TargetKind
from tests.executor_service.unit.builders import T0, new_job

SendRequest = SendTextRequest | SendMediaRequest | SendAudioRequest | SendReactionRequest


class RecordingProvider(WhatsAppProvider):
    """Records every request; lookups answer `answer` or raise `lookup_error`."""

    name = "RECORDING"

    def __init__(self) -> None:
        self.requests: list[SendRequest] = []
        self.lookups: list[LookupRequest] = []
        self.answer = LookupResult.absent()
        self.lookup_error: ProviderError | None = None

    async def _sent(self, request: SendRequest) -> SentMessage:
        self.requests.append(request)
        return SentMessage(request.client_message_id or "PROVIDER-ID")

    async def send_text(self, request: SendTextRequest) -> SentMessage:
        return await self._sent(request)

    async def send_media(self, request: SendMediaRequest) -> SentMessage:
        return await self._sent(request)

    async def send_audio(self, request: SendAudioRequest) -> SentMessage:
        return await self._sent(request)

    async def send_reaction(self, request: SendReactionRequest) -> SentMessage:
        return await self._sent(request)

    async def find_sent_message(self, request: LookupRequest) -> LookupResult:
        self.lookups.append(request)
        if self.lookup_error is not None:
            raise self.lookup_error
        return self.answer


def sender() -> tuple[ProviderMessageSender, RecordingProvider]:
    provider = RecordingProvider()
    return ProviderMessageSender(ProviderDirectory({Provider.WAHA: provider}), FakeClock(T0)), provider


MESSAGES = [
    OutboundMessage(
        target_kind=TargetKind.PHONE,
        recipient="5511987654321",
        type=MessageType.MEDIA,
        media_url="https://cdn.example/a.pdf",
        mime_type="application/pdf",
    ),
    OutboundMessage(
        target_kind=TargetKind.PHONE,
        recipient="5511987654321",
        type=MessageType.AUDIO,
        audio_url="https://cdn.example/a.ogg",
    ),
    OutboundMessage(
        target_kind=TargetKind.PHONE,
        recipient="5511987654321",
        type=MessageType.REACTION,
        emoji="👍",
        message_ref="3EB0FFFFFFFFFFFFFFFF",
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.type.value)
async def test_every_kind_of_send_carries_the_jobs_client_id(message):
    adapter, provider = sender()
    job = new_job(message=message, client_message_id="3EB0ABCDEF0123456789")
    receipt = await adapter.send(job)
    assert provider.requests[0].client_message_id == "3EB0ABCDEF0123456789"
    assert receipt.provider_message_id == "3EB0ABCDEF0123456789"


async def test_a_lookup_asks_with_the_profile_and_the_attempts_start():
    adapter, provider = sender()
    provider.answer = LookupResult.found("true_5511987654321@c.us_3EB0AAAAAAAAAAAAAAAA")
    profile = ProviderProfile(Provider.WAHA, "2026.4.3", ProviderEngine.GOWS)
    job = new_job()
    result = await adapter.look_up(job, profile, sent_after=T0 - timedelta(seconds=5))
    assert result.verdict is LookupVerdict.FOUND
    [asked] = provider.lookups
    assert asked.profile == profile and asked.sent_after == T0 - timedelta(seconds=5)
    assert (asked.recipient, asked.message_type, asked.client_message_id) == (
        "5511987654321",
        MessageType.TEXT,
        job.client_message_id,
    )


async def test_a_lookup_the_provider_refuses_proves_nothing():
    adapter, provider = sender()
    provider.lookup_error = ProviderError.permanent("http_400", status=400)  # NOWEB without its store
    result = await adapter.look_up(new_job(), ProviderProfile(Provider.WAHA), sent_after=T0)
    assert result.verdict is LookupVerdict.INCONCLUSIVE and result.reason == "http_400"


async def test_a_lookup_that_fails_for_now_is_asked_again_later():
    adapter, provider = sender()
    provider.lookup_error = ProviderError.transient("http_503", status=503)
    with pytest.raises(SendFailed) as failed:
        await adapter.look_up(new_job(), ProviderProfile(Provider.WAHA), sent_after=T0)
    assert failed.value.error.error_class is ErrorClass.TRANSIENT
