"""Unit: the port's requests, client ids, the factory and the fake provider."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
import pytest

from libs.providers import (
    SESSION_NOT_FOUND,
    ErrorClass,
    EvolutionProvider,
    MediaKind,
    ProviderError,
    SendAudioRequest,
    SendMediaRequest,
    SendReactionRequest,
    SendTextRequest,
    SentMessage,
    SessionWebhook,
    TurboZapProvider,
    WahaProvider,
    WuzapiProvider,
    build_provider,
    create_client_session,
    new_client_message_id,
)
from libs.providers.capabilities import LookupRequest, LookupResult, ProviderProfile
from libs.providers.fake import FakeProviderSessions, FakeWhatsAppProvider
from libs.seedwork.shared_kernel import ConnectionState, MessageType, Provider

PHONE = "5511987654321"


def invalid(build: Callable[[], object]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        build()
    assert caught.value.error_class is ErrorClass.PERMANENT
    return caught.value


@pytest.mark.parametrize(
    "recipient", ["+5511987654321", "11 98765-4321", "abc", "", "0551198765432", "123@c.us"]
)
def test_recipient_must_be_digits_or_a_group(recipient: str) -> None:
    error = invalid(lambda: SendTextRequest(instance_ref="s", recipient=recipient, text="x"))
    assert error.code == "invalid_recipient"


def test_group_recipient_is_accepted() -> None:
    SendTextRequest(instance_ref="s", recipient="120363025246125486@g.us", text="x")


def test_text_and_instance_are_required() -> None:
    assert (
        invalid(lambda: SendTextRequest(instance_ref="s", recipient=PHONE, text="")).code == "invalid_request"
    )
    assert (
        invalid(lambda: SendTextRequest(instance_ref="", recipient=PHONE, text="x")).code == "invalid_request"
    )


@pytest.mark.parametrize("client_id", ["short", "3eb0aaaabbbbcccc", "3EB0-AAAA-BBBB-CCCC", "X" * 16])
def test_client_message_id_must_look_like_a_whatsapp_id(client_id: str) -> None:
    invalid(lambda: SendTextRequest(instance_ref="s", recipient=PHONE, text="x", client_message_id=client_id))


def test_media_needs_exactly_one_source() -> None:
    invalid(
        lambda: SendMediaRequest(
            instance_ref="s", recipient=PHONE, kind=MediaKind.IMAGE, mimetype="image/png"
        )
    )
    invalid(
        lambda: SendMediaRequest(
            instance_ref="s",
            recipient=PHONE,
            kind=MediaKind.IMAGE,
            mimetype="image/png",
            url="https://x/a.png",
            data_base64="AA==",
        )
    )
    invalid(lambda: SendAudioRequest(instance_ref="s", recipient=PHONE, url="ftp://x/a.ogg"))
    invalid(
        lambda: SendMediaRequest(
            instance_ref="s", recipient=PHONE, kind=MediaKind.IMAGE, mimetype="png", url="https://x/a.png"
        )
    )


def test_reaction_needs_a_target() -> None:
    invalid(
        lambda: SendReactionRequest(
            instance_ref="s", recipient=PHONE, message_id="", emoji="👍", target_from_me=True
        )
    )


def test_client_message_ids() -> None:
    seeded = new_client_message_id("intent-42")
    assert seeded == new_client_message_id("intent-42") != new_client_message_id("intent-43")
    assert seeded.startswith("3EB0") and len(seeded) == 20 and seeded.upper() == seeded
    assert new_client_message_id() != new_client_message_id()
    SendTextRequest(instance_ref="s", recipient=PHONE, text="x", client_message_id=seeded)


@pytest.mark.parametrize(
    ("name", "adapter"),
    [
        ("EVOLUTION", EvolutionProvider),
        ("waha", WahaProvider),
        ("WuzApi", WuzapiProvider),
        ("TURBOZAP", TurboZapProvider),
        ("SIMULATOR", WahaProvider),
    ],
)
async def test_factory(name: str, adapter: type) -> None:
    async with create_client_session() as session:
        provider = build_provider(name, "http://127.0.0.1:3000/", "key", session=session, timeout=3)
        assert type(provider) is adapter
        assert "key" not in repr(provider)


async def test_factory_refuses_unknown_providers_and_urls() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match="unknown provider"):
            build_provider("twilio", "http://x", "k", session=session)
        with pytest.raises(ValueError, match="base_url"):
            build_provider("WAHA", "127.0.0.1:3000", "k", session=session)


async def test_fake_provider_records_and_fails_on_demand() -> None:
    fake = FakeWhatsAppProvider()
    request = SendTextRequest(
        instance_ref="s", recipient=PHONE, text="x", client_message_id="3EB0AAAABBBBCCCCDDDD"
    )
    assert await fake.send_text(request) == SentMessage("3EB0AAAABBBBCCCCDDDD")

    fake.fail_next(ProviderError.transient("http_500"))
    with pytest.raises(ProviderError):
        await fake.send_text(request)
    assert len(fake.sent) == 1

    # An answer lost after the send: recorded, raised as AMBIGUOUS, and found by lookup.
    lost = SendTextRequest(
        instance_ref="s", recipient=PHONE, text="y", client_message_id="3EB0EEEEFFFF00001111"
    )
    fake.fail_next(ProviderError.ambiguous("read_timeout"), accept=True)
    with pytest.raises(ProviderError):
        await fake.send_text(lost)
    assert await fake.find_sent_message(lookup("3EB0EEEEFFFF00001111")) == LookupResult.found(
        "3EB0EEEEFFFF00001111"
    )
    assert await fake.find_sent_message(lookup("3EB0000000000000DEAD")) == LookupResult.absent()


def lookup(client_message_id: str | None) -> LookupRequest:
    return LookupRequest(
        profile=ProviderProfile(Provider.SIMULATOR),
        instance_ref="s",
        recipient=PHONE,
        message_type=MessageType.TEXT,
        client_message_id=client_message_id,
        sent_after=datetime(2026, 11, 20, tzinfo=UTC),
    )


async def test_fake_provider_that_ignores_our_id_cannot_prove_a_miss() -> None:
    fake = FakeWhatsAppProvider(keeps_client_id=False, miss_proves_absence=False)
    request = SendTextRequest(
        instance_ref="s", recipient=PHONE, text="x", client_message_id="3EB0AAAABBBBCCCCDDDD"
    )
    assert (await fake.send_text(request)).provider_message_id != "3EB0AAAABBBBCCCCDDDD"
    assert await fake.find_sent_message(lookup("3EB0AAAABBBBCCCCDDDD")) == LookupResult.inconclusive(
        "not_found"
    )
    assert await fake.find_sent_message(lookup(None)) == LookupResult.inconclusive("no_client_id")


async def test_the_fake_sessions_link_a_number_like_a_provider() -> None:
    sessions = FakeProviderSessions()
    with pytest.raises(ProviderError) as unknown:
        await sessions.session_status("sales-03")
    assert unknown.value.code == SESSION_NOT_FOUND
    await sessions.set_webhook("sales-03", SessionWebhook(url="https://gw/hook", secret="s" * 32))
    started = await sessions.start_session("sales-03")
    assert started.state is ConnectionState.QR_REQUIRED and started.qr == await sessions.get_qr("sales-03")
    rotated = sessions.rotate_qr("sales-03")
    assert rotated != started.qr and await sessions.get_qr("sales-03") == rotated
    assert (await sessions.request_pairing_code("sales-03", "5511987650000")).code
    sessions.scan("sales-03")
    assert (await sessions.session_status("sales-03")).state is ConnectionState.CONNECTED
    assert await sessions.get_qr("sales-03") is None
    sessions.fail_next(ProviderError.transient("http_503"))
    with pytest.raises(ProviderError):
        await sessions.logout_session("sales-03")
    await sessions.logout_session("sales-03")
    assert (await sessions.session_status("sales-03")).state is ConnectionState.LOGGED_OUT
    await sessions.delete_session("sales-03")
    await sessions.delete_session("sales-03")  # unknown: done
    assert sessions.calls[0] == ("session_status", "sales-03")
