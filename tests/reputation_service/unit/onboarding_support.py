"""What the onboarding tests share: a registered instance nobody connected yet, and the registry's
session adapter over a fake provider."""

from __future__ import annotations

from libs.providers.directory import AdapterDirectory
from libs.providers.fake import FakeProviderSessions
from libs.seedwork.clock import FakeClock
from libs.seedwork.shared_kernel import Provider, Purpose
from reputation_service.domain.instance import Instance
from reputation_service.infrastructure.provider_sessions import ProviderInstanceSessions
from tests.reputation_service.unit.fakes import FakeReputationUnitOfWork

MASTER_KEY = b"k" * 32
GATEWAY = "https://hooks.example.test"


def registered_instance(
    uow: FakeReputationUnitOfWork, clock: FakeClock, *, organization_id: str, ref: str
) -> Instance:
    """A WAHA instance, registered with no connection state reported yet, stored in `uow`."""
    registered = Instance.register(
        organization_id=organization_id,
        display_name=ref,
        provider=Provider.WAHA,
        provider_instance_ref=ref,
        phone="5511987654321",
        purposes=frozenset({Purpose.DISPATCH}),
        connection_state=None,
        now=clock.now(),
    )
    registered.pull_events()
    uow.seed(registered)
    return registered


def sessions_at(
    provider: FakeProviderSessions, *, at: Provider = Provider.WAHA, gateway: str = GATEWAY
) -> ProviderInstanceSessions:
    """The registry's session adapter with `provider` configured as `at`'s endpoint."""
    return ProviderInstanceSessions(
        AdapterDirectory({at: provider}), gateway_url=gateway, master_key=MASTER_KEY
    )
