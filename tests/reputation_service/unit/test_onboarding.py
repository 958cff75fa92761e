"""Onboarding through the provider (ADR 0049): the connection state follows the newest report, whatever
order the reports come in; ConnectInstance, LogoutInstance, DeleteInstance and the status check drive the
provider's session port (FakeProviderSessions) through the registry's adapter, and the provider's
failures become the registry's errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from libs.providers.fake import FakeProviderSessions
from libs.providers.port import ProviderError
from libs.seedwork.clock import FakeClock
from libs.seedwork.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from libs.seedwork.shared_kernel import ConnectionState, Provider
from libs.webhooks import webhook_secret
from reputation_service.application.check_sessions import CheckSessionsHandler, StatusCheckSchedule
from reputation_service.application.connect_instance import (
    ConnectInstance,
    ConnectInstanceHandler,
    DeleteInstanceHandler,
    InstanceAtProvider,
    LogoutInstanceHandler,
)
from reputation_service.application.observe_connection import (
    ConnectionReport,
    ConnectionsObserved,
    ObserveConnectionsHandler,
)
from reputation_service.domain.events import InstanceChanged
from reputation_service.domain.instance import Instance
from reputation_service.entrypoints.consumers import ConnectionStates
from reputation_service.infrastructure.provider_sessions import ProviderInstanceSessions
from tests.reputation_service.unit.fakes import FakeReputationUnitOfWork
from tests.reputation_service.unit.onboarding_support import (
    GATEWAY,
    MASTER_KEY,
    registered_instance,
    sessions_at,
)
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import provider_events_pb2 as pe

ORG = "org-acme"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uow(clock: FakeClock) -> FakeReputationUnitOfWork:
    return FakeReputationUnitOfWork(clock)


@pytest.fixture
def instance(uow: FakeReputationUnitOfWork, clock: FakeClock) -> Instance:
    return registered_instance(uow, clock, organization_id=ORG, ref="sales-1")


@pytest.fixture
def provider() -> FakeProviderSessions:
    return FakeProviderSessions()


def sessions(provider: FakeProviderSessions, *, gateway: str = GATEWAY) -> ProviderInstanceSessions:
    return sessions_at(provider, gateway=gateway)


# --- the state follows the newest report -------------------------------------------------------------


def test_a_newer_report_changes_the_state_and_announces_it(instance, clock):
    at = clock.now()
    assert instance.observe_connection(
        ConnectionState.QR_REQUIRED, reason="SCAN_QR_CODE", observed_at=at, now=at
    )

    assert (instance.connection_state, instance.connection_reason) == (
        ConnectionState.QR_REQUIRED,
        "SCAN_QR_CODE",
    )
    assert instance.connection_observed_at == at
    [event] = instance.pull_events()
    assert isinstance(event, InstanceChanged) and event.changed_fields == ("connection_state",)
    assert event.instance.connection_state is ConnectionState.QR_REQUIRED


def test_a_report_older_than_the_last_applied_changes_nothing(instance, clock):
    late = clock.now()
    instance.observe_connection(ConnectionState.CONNECTED, reason="WORKING", observed_at=late, now=late)
    instance.pull_events()
    version = instance.version

    earlier = late - timedelta(seconds=5)
    assert not instance.observe_connection(
        ConnectionState.QR_REQUIRED, reason="", observed_at=earlier, now=late
    )
    # The same report twice is one report.
    assert not instance.observe_connection(
        ConnectionState.CONNECTED, reason="WORKING", observed_at=late, now=late
    )

    assert instance.connection_state is ConnectionState.CONNECTED
    assert instance.version == version and instance.pull_events() == []


def test_the_same_state_reported_later_moves_the_observed_time_without_an_event(instance, clock):
    first = clock.now()
    instance.observe_connection(ConnectionState.QR_REQUIRED, reason="", observed_at=first, now=first)
    instance.pull_events()
    later = first + timedelta(seconds=20)

    assert instance.observe_connection(ConnectionState.QR_REQUIRED, reason="", observed_at=later, now=later)

    assert instance.connection_observed_at == later and instance.pull_events() == []
    assert instance.version == 2  # registered, then one change of state: one event per version
    # So a report from between the two is older than what was applied.
    between = first + timedelta(seconds=10)
    assert not instance.observe_connection(
        ConnectionState.DISCONNECTED, reason="", observed_at=between, now=later
    )


async def test_a_batch_out_of_order_ends_where_the_newest_report_says(uow, instance, clock):
    t0 = clock.now()

    def report(state: ConnectionState, seconds: int) -> ConnectionReport:
        return ConnectionReport(
            organization_id=ORG,
            instance_id=instance.id,
            state=state,
            reason="",
            observed_at=t0 + timedelta(seconds=seconds),
        )

    async with uow:
        result = await ObserveConnectionsHandler(clock)(
            uow,
            [
                report(ConnectionState.CONNECTED, 30),
                report(ConnectionState.QR_REQUIRED, 10),
                report(ConnectionState.CONNECTED, 30),  # delivered twice
                report(ConnectionState.DISCONNECTED, 20),
            ],
        )
        await uow.commit()

    stored = await uow.instances.get(ORG, instance.id)
    assert stored is not None and stored.connection_state is ConnectionState.CONNECTED
    assert (result.applied, result.stale, result.unknown_instance) == (3, 1, 0)


async def test_the_same_state_heard_later_is_stored_as_confirmed_without_a_new_version(uow, instance, clock):
    t0 = clock.now()

    def report(seconds: int) -> ConnectionReport:
        return ConnectionReport(
            organization_id=ORG,
            instance_id=instance.id,
            state=ConnectionState.CONNECTED,
            reason="WORKING",
            observed_at=t0 + timedelta(seconds=seconds),
        )

    for seconds in (10, 40):
        async with uow:
            await ObserveConnectionsHandler(clock)(uow, [report(seconds)])
            await uow.commit()

    stored = await uow.instances.get(ORG, instance.id)
    assert stored is not None and stored.version == 2  # registered, then connected
    assert uow.instances.confirmed == [(instance.id, t0 + timedelta(seconds=40))]


async def test_a_webhook_names_no_organization_and_a_report_naming_another_one_is_dropped(
    uow, instance, clock
):
    at = clock.now()

    async def observe(organization: str, seconds: int) -> ConnectionsObserved:
        async with uow:
            report = ConnectionReport(
                organization_id=organization,
                instance_id=instance.id,
                state=ConnectionState.CONNECTED,
                reason="",
                observed_at=at + timedelta(seconds=seconds),
            )
            result = await ObserveConnectionsHandler(clock)(uow, [report])
            await uow.commit()
        return result

    assert (await observe("org-other", 1)).unknown_instance == 1
    assert (await observe("", 2)).applied == 1
    stored = await uow.instances.get(ORG, instance.id)
    assert stored is not None and stored.connection_state is ConnectionState.CONNECTED


# --- the gateway's events as reports -------------------------------------------------------------------


def provider_event(event_type: int, **fields: object) -> pe.ProviderEventReceived:
    event = pe.ProviderEventReceived(type=event_type, provider=common_pb2.PROVIDER_WAHA, **fields)  # type: ignore[arg-type]
    event.meta.organization_id = ORG
    event.meta.event_id = "e1"
    event.occurred_at.GetCurrentTime()
    return event


@pytest.mark.parametrize(
    ("event_type", "named", "expected"),
    [
        (pe.PROVIDER_EVENT_TYPE_CONNECTION_CONNECTED, 0, ConnectionState.CONNECTED),
        (pe.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED, 0, ConnectionState.DISCONNECTED),
        (
            pe.PROVIDER_EVENT_TYPE_CONNECTION_DISCONNECTED,
            common_pb2.CONNECTION_STATE_LOGGED_OUT,
            ConnectionState.LOGGED_OUT,
        ),
        (pe.PROVIDER_EVENT_TYPE_CONNECTION_ERROR, 0, ConnectionState.DISCONNECTED),
        (pe.PROVIDER_EVENT_TYPE_INSTANCE_BANNED, 0, ConnectionState.BANNED),
        (
            pe.PROVIDER_EVENT_TYPE_QR_UPDATED,
            common_pb2.CONNECTION_STATE_QR_REQUIRED,
            ConnectionState.QR_REQUIRED,
        ),
    ],
)
def test_each_connection_event_is_a_report_of_its_state(clock, event_type, named, expected):
    handler = ConnectionStates(ObserveConnectionsHandler(clock), clock)
    for origin in (pe.PROVIDER_EVENT_ORIGIN_WEBHOOK, pe.PROVIDER_EVENT_ORIGIN_PROBE):
        report = handler.report(
            provider_event(
                event_type, instance_id="i-1", connection_state=named, connection_reason="401", origin=origin
            )
        )
        assert report is not None
        assert (report.state, report.reason, report.instance_id) == (expected, "401", "i-1")


def test_message_events_are_not_connection_reports(clock):
    handler = ConnectionStates(ObserveConnectionsHandler(clock), clock)
    assert handler.report(provider_event(pe.PROVIDER_EVENT_TYPE_MESSAGE_DELIVERED, instance_id="i-1")) is None


# --- ConnectInstance, LogoutInstance, DeleteInstance ---------------------------------------------------


async def test_connect_points_the_webhook_at_the_gateway_and_answers_the_qr_code(
    uow, instance, clock, provider
):
    connection = await ConnectInstanceHandler(
        lambda: uow, sessions(provider), ObserveConnectionsHandler(clock), clock
    )(ConnectInstance(organization_id=ORG, instance_id=instance.id))

    webhook = provider.webhooks["sales-1"]
    assert webhook.url == f"{GATEWAY}/webhooks/waha/{instance.id}"
    assert webhook.secret == webhook_secret(MASTER_KEY, instance.id)
    assert [call for call, _ in provider.calls][:2] == ["set_webhook", "start_session"]
    assert connection.state is ConnectionState.QR_REQUIRED
    assert connection.qr is not None and connection.qr.code == provider.qr_codes["sales-1"].raw
    assert connection.pairing_code == ""
    stored = await uow.instances.get(ORG, instance.id)
    assert stored is not None and stored.connection_state is ConnectionState.QR_REQUIRED
    assert uow.events_of(InstanceChanged)


async def test_connect_with_a_phone_answers_a_pairing_code(uow, instance, clock, provider):
    connection = await ConnectInstanceHandler(
        lambda: uow, sessions(provider), ObserveConnectionsHandler(clock), clock
    )(ConnectInstance(organization_id=ORG, instance_id=instance.id, pairing_phone="+55 11 98765-0000"))
    assert connection.pairing_code == "FAKE-CODE"


class QrOnlyProviderSessions(FakeProviderSessions):
    offers_pairing_code = False


async def test_a_pairing_code_from_a_provider_without_them_is_refused_before_anything_changes(
    uow, instance, clock
):
    provider = QrOnlyProviderSessions()
    connect = ConnectInstanceHandler(lambda: uow, sessions(provider), ObserveConnectionsHandler(clock), clock)

    with pytest.raises(FailedPrecondition, match="QR code only"):
        await connect(
            ConnectInstance(organization_id=ORG, instance_id=instance.id, pairing_phone="5511987650000")
        )
    assert provider.calls == []


async def test_connect_refuses_a_bad_pairing_phone_and_another_organizations_instance(
    uow, instance, clock, provider
):
    connect = ConnectInstanceHandler(lambda: uow, sessions(provider), ObserveConnectionsHandler(clock), clock)

    with pytest.raises(InvalidArgument) as refused:
        await connect(ConnectInstance(organization_id=ORG, instance_id=instance.id, pairing_phone="12"))
    assert [v.field for v in refused.value.violations] == ["pairing_phone"]
    with pytest.raises(NotFound):
        await connect(ConnectInstance(organization_id="org-other", instance_id=instance.id))
    assert provider.calls == []


async def test_a_provider_that_does_not_answer_is_unavailable_and_one_not_configured_a_precondition(
    uow, instance, clock, provider
):
    provider.fail_next(ProviderError.transient("http_503", "down"))
    connect = ConnectInstanceHandler(lambda: uow, sessions(provider), ObserveConnectionsHandler(clock), clock)
    with pytest.raises(Unavailable):
        await connect(ConnectInstance(organization_id=ORG, instance_id=instance.id))

    elsewhere = sessions_at(provider, at=Provider.EVOLUTION)
    with pytest.raises(FailedPrecondition, match="REPUTATION_WAHA_URL"):
        await ConnectInstanceHandler(lambda: uow, elsewhere, ObserveConnectionsHandler(clock), clock)(
            ConnectInstance(organization_id=ORG, instance_id=instance.id)
        )
    no_gateway = sessions(provider, gateway="")
    with pytest.raises(FailedPrecondition, match="GATEWAY_PUBLIC_URL"):
        await ConnectInstanceHandler(lambda: uow, no_gateway, ObserveConnectionsHandler(clock), clock)(
            ConnectInstance(organization_id=ORG, instance_id=instance.id)
        )
    stored = await uow.instances.get(ORG, instance.id)
    assert stored is not None and stored.connection_state is ConnectionState.UNKNOWN


async def test_logout_and_delete_undo_it_at_the_provider_and_keep_the_instance(
    uow, instance, clock, provider
):
    observe = ObserveConnectionsHandler(clock)
    port = sessions(provider)
    await ConnectInstanceHandler(lambda: uow, port, observe, clock)(
        ConnectInstance(organization_id=ORG, instance_id=instance.id)
    )
    provider.scan("sales-1")
    clock.advance(seconds=1)

    logged_out = await LogoutInstanceHandler(lambda: uow, port, observe, clock)(
        InstanceAtProvider(organization_id=ORG, instance_id=instance.id)
    )
    assert logged_out.connection_state is ConnectionState.LOGGED_OUT
    assert provider.states["sales-1"] is ConnectionState.LOGGED_OUT

    clock.advance(seconds=1)
    deleted = await DeleteInstanceHandler(lambda: uow, port, observe, clock)(
        InstanceAtProvider(organization_id=ORG, instance_id=instance.id)
    )
    assert deleted.connection_state is ConnectionState.LOGGED_OUT
    assert "sales-1" not in provider.states
    assert await uow.instances.get(ORG, instance.id) is not None


# --- the status check ----------------------------------------------------------------------------------


def checker(uow, clock, provider) -> CheckSessionsHandler:
    return CheckSessionsHandler(
        lambda: uow,
        sessions(provider),
        ObserveConnectionsHandler(clock),
        clock,
        StatusCheckSchedule(
            waiting_every=timedelta(seconds=15), others_every=timedelta(minutes=15), batch_size=10
        ),
    )


async def test_the_status_check_catches_a_connection_whose_webhook_never_came(uow, instance, clock, provider):
    await ConnectInstanceHandler(lambda: uow, sessions(provider), ObserveConnectionsHandler(clock), clock)(
        ConnectInstance(organization_id=ORG, instance_id=instance.id)
    )
    assert (await checker(uow, clock, provider)()).checked == 1  # still waiting for the scan
    provider.scan("sales-1")  # no webhook

    assert (await checker(uow, clock, provider)()).checked == 0  # asked just now: not due yet
    clock.advance(seconds=16)
    checked = await checker(uow, clock, provider)()

    assert (checked.checked, checked.applied) == (1, 1)
    stored = await uow.instances.get(ORG, instance.id)
    assert stored is not None and stored.connection_state is ConnectionState.CONNECTED
    # Connected: next asked at the slower interval.
    clock.advance(seconds=16)
    assert (await checker(uow, clock, provider)()).checked == 0


async def test_the_status_check_leaves_an_instance_alone_when_the_provider_does_not_answer(
    uow, instance, clock, provider
):
    await ConnectInstanceHandler(lambda: uow, sessions(provider), ObserveConnectionsHandler(clock), clock)(
        ConnectInstance(organization_id=ORG, instance_id=instance.id)
    )
    clock.advance(seconds=16)
    provider.fail_next(ProviderError.transient("timeout", "slow"))

    checked = await checker(uow, clock, provider)()

    assert (checked.checked, checked.applied, checked.unavailable) == (1, 0, 1)
    stored = await uow.instances.get(ORG, instance.id)
    assert stored is not None and stored.connection_state is ConnectionState.QR_REQUIRED
    # Asked again after its interval, not at every pass.
    assert (await checker(uow, clock, provider)()).checked == 0
    clock.advance(seconds=16)
    assert (await checker(uow, clock, provider)()).checked == 1


async def test_a_session_the_provider_does_not_know_changes_nothing(uow, instance, clock, provider):
    # Registered by hand as connected, its session made by the provider on its first send (the simulator).
    instance.observe_connection(
        ConnectionState.CONNECTED, reason="", observed_at=clock.now(), now=clock.now()
    )

    checked = await checker(uow, clock, provider)()

    assert (checked.checked, checked.applied) == (1, 0)
    stored = await uow.instances.get(ORG, instance.id)
    assert stored is not None and stored.connection_state is ConnectionState.CONNECTED
