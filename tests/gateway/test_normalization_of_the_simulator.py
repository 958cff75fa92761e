"""The provider simulator's webhooks (shaped from WAHA's own source) read by the gateway's WAHA normalizer:
the two were written from different evidence, so each checks the other on the shapes only one had seen
(group receipts, the 463 error ack, the reach-out time-lock, a ban)."""

from __future__ import annotations

import pytest

from gateway.domain.events import ProviderEvent, ProviderEventKind, Restriction
from gateway.domain.normalization import ProviderNormalizer
from libs.provider_simulator import ProviderSimulator
from libs.providers import ProviderError, SendTextRequest, WahaProvider
from libs.seedwork.shared_kernel import Provider
from tests.libs.provider_simulator.conftest import receiver, simulator, waha  # noqa: F401 (fixtures)
from tests.libs.provider_simulator.receiver import WebhookReceiver, wait_until

INSTANCE_ID = "0193a5d4-5c1e-7b2a-9f00-0000000000b1"
PHONE = "5511988887777"
GROUP = "120363025246125486@g.us"


def events(posted: WebhookReceiver) -> list[ProviderEvent]:
    """What the gateway makes of everything the simulator posted, in order."""
    normalizer = ProviderNormalizer()
    found: list[ProviderEvent] = []
    for delivery in posted.deliveries:
        headers = {name.lower(): value for name, value in delivery.headers.items()}
        found.extend(normalizer.normalize(Provider.SIMULATOR, INSTANCE_ID, headers, delivery.raw).events)
    return found


def kinds(posted: WebhookReceiver) -> list[tuple[ProviderEventKind, str]]:
    return [(event.kind, event.provider_message_id) for event in events(posted)]


def text(recipient: str = PHONE) -> SendTextRequest:
    return SendTextRequest(instance_ref="sales-03", recipient=recipient, text="hello")


async def test_receipts_of_a_group_message_are_its_sent_delivered_and_read(
    simulator: ProviderSimulator,  # noqa: F811
    waha: WahaProvider,  # noqa: F811
    receiver: WebhookReceiver,  # noqa: F811
) -> None:
    sent = await waha.send_text(text(GROUP))
    await wait_until(lambda: len(receiver.events("message.ack.group")) == 3)
    assert kinds(receiver) == [
        (ProviderEventKind.MESSAGE_SENT, sent.provider_message_id),
        (ProviderEventKind.MESSAGE_DELIVERED, sent.provider_message_id),
        (ProviderEventKind.MESSAGE_READ, sent.provider_message_id),
    ]


async def test_a_463_after_acceptance_is_a_failed_message_and_a_timelocked_number(
    simulator: ProviderSimulator,  # noqa: F811
    waha: WahaProvider,  # noqa: F811
    receiver: WebhookReceiver,  # noqa: F811
) -> None:
    simulator.configure_session("sales-03", timelock_ack_next=1)
    refused = await waha.send_text(text())
    await wait_until(lambda: bool(receiver.events("session.status")) and bool(receiver.events("message.ack")))
    assert (ProviderEventKind.MESSAGE_FAILED, refused.provider_message_id) in kinds(receiver)
    assert (ProviderEventKind.REACHOUT_TIMELOCKED, "") in kinds(receiver)
    # The ack carries the 463 as NOWEB does, so the job's failure is known restricted without the status.
    [failed] = [event for event in events(receiver) if event.kind is ProviderEventKind.MESSAGE_FAILED]
    assert (failed.error_code, failed.restriction) == ("463", Restriction.REACHOUT_TIMELOCK)
    assert failed.timelock_until is not None


async def test_a_463_in_a_group_is_a_failed_message_as_well(
    simulator: ProviderSimulator,  # noqa: F811
    waha: WahaProvider,  # noqa: F811
    receiver: WebhookReceiver,  # noqa: F811
) -> None:
    simulator.configure_session("sales-03", timelock_ack_next=1)
    refused = await waha.send_text(text(GROUP))
    await wait_until(lambda: bool(receiver.events("message.ack")))
    [failed] = [event for event in events(receiver) if event.kind is ProviderEventKind.MESSAGE_FAILED]
    assert (failed.provider_message_id, failed.error_code) == (refused.provider_message_id, "463")


async def test_a_time_lock_that_ends_is_reported_lifted(
    simulator: ProviderSimulator,  # noqa: F811
    waha: WahaProvider,  # noqa: F811
    receiver: WebhookReceiver,  # noqa: F811
) -> None:
    simulator.configure_session("sales-03", timelock_ack_next=1)
    await waha.send_text(text())
    await wait_until(lambda: len(receiver.events("session.status")) == 1)
    simulator.reset_session("sales-03")  # the time-lock ends
    await wait_until(lambda: len(receiver.events("session.status")) == 2)
    timelock_kinds = [
        event.kind
        for event in events(receiver)
        if event.kind in (ProviderEventKind.REACHOUT_TIMELOCKED, ProviderEventKind.REACHOUT_TIMELOCK_LIFTED)
    ]
    assert timelock_kinds == [
        ProviderEventKind.REACHOUT_TIMELOCKED,
        ProviderEventKind.REACHOUT_TIMELOCK_LIFTED,
    ]


async def test_a_banned_session_is_a_connection_error_as_waha_reports_it(
    simulator: ProviderSimulator,  # noqa: F811
    waha: WahaProvider,  # noqa: F811
    receiver: WebhookReceiver,  # noqa: F811
) -> None:
    simulator.ban("sales-03")
    with pytest.raises(ProviderError):
        await waha.send_text(text())
    await wait_until(lambda: bool(receiver.events("session.status")))
    # WAHA names no ban: a blocked account is a FAILED session, and Reputation infers the rest.
    assert [kind for kind, _ in kinds(receiver)] == [ProviderEventKind.CONNECTION_ERROR]


async def test_linking_a_number_is_qr_updates_then_connected(
    simulator: ProviderSimulator,  # noqa: F811
    waha: WahaProvider,  # noqa: F811
    receiver: WebhookReceiver,  # noqa: F811
) -> None:
    simulator.update_settings(qr_rotate_s=0.1)
    await waha.start_session("phone-01")
    await wait_until(lambda: len(receiver.events("session.status")) >= 3)  # STARTING and two QR codes
    simulator.scan("phone-01")
    await wait_until(lambda: receiver.events("session.status")[-1]["payload"]["status"] == "WORKING")
    found = [event.kind for event in events(receiver)]
    assert found[-1] is ProviderEventKind.CONNECTION_CONNECTED
    assert set(found[:-1]) == {ProviderEventKind.QR_UPDATED} and len(found) >= 3  # STARTING is ignored
