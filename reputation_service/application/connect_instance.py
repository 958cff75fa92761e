"""Onboarding through the provider (ADR 0049): ConnectInstance, LogoutInstance, DeleteInstance, and where an
instance's connection stands (what WatchInstance sends). The provider is called outside any transaction;
what it answered is applied like any other connection report (ObserveConnectionsHandler), so an answer
and a webhook about the same moment end where the newer says."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from libs.seedwork.clock import Clock
from libs.seedwork.errors import FailedPrecondition, InvalidArgument, NotFound, Reason, Unavailable
from libs.seedwork.ids import is_valid_id
from libs.seedwork.organizations import require_organization
from libs.seedwork.phone import normalize_phone
from libs.seedwork.shared_kernel import ConnectionState
from reputation_service.application.observe_connection import ConnectionReport, ObserveConnectionsHandler
from reputation_service.application.onboarding_ports import InstanceChange, InstanceSessions, QrImage
from reputation_service.domain.instance import Instance
from reputation_service.domain.ports import ReputationUnitOfWork

# Where nothing more will change without someone acting: a watch ends there.
FINAL_STATES = frozenset({ConnectionState.CONNECTED, ConnectionState.BANNED})


@dataclass(frozen=True, kw_only=True)
class InstanceConnection:
    """Where an instance's connection stands: its state as last reported, the QR code to scan while one
    is required, the pairing code ConnectInstance asked for."""

    instance: Instance
    qr: QrImage | None = None
    pairing_code: str = ""

    @property
    def state(self) -> ConnectionState:
        return self.instance.connection_state

    @property
    def reason(self) -> str:
        return self.instance.connection_reason

    @property
    def observed_at(self) -> datetime | None:
        return self.instance.connection_observed_at


@dataclass(frozen=True, kw_only=True)
class ConnectInstance:
    organization_id: str
    instance_id: str
    pairing_phone: str = ""  # E.164; "": QR only


@dataclass(frozen=True, kw_only=True)
class InstanceAtProvider:
    """LogoutInstance, DeleteInstance, WatchInstance: one instance of the organization."""

    organization_id: str
    instance_id: str


class _Onboarding:
    def __init__(
        self,
        uow: Callable[[], ReputationUnitOfWork],
        sessions: InstanceSessions,
        observe: ObserveConnectionsHandler,
        clock: Clock,
    ) -> None:
        self._uow = uow
        self._sessions = sessions
        self._observe = observe
        self._clock = clock

    async def _instance(self, organization_id: str, instance_id: str) -> Instance:
        require_organization(organization_id)
        if not is_valid_id(instance_id):
            raise InvalidArgument.of("instance_id", "must be an instance id")
        async with self._uow() as uow:
            instance = await uow.instances.get(organization_id, instance_id)
        if instance is None:
            raise NotFound(
                f"instance {instance_id} not found",
                reason=Reason.INSTANCE_NOT_FOUND,
                metadata={"instance_id": instance_id},
            )
        return instance

    async def _report(self, instance: Instance, state: ConnectionState, reason: str) -> Instance:
        """Apply what the provider answered, as observed now; the instance as it then stands."""
        report = ConnectionReport(
            organization_id=instance.organization_id,
            instance_id=instance.id,
            state=state,
            reason=reason,
            observed_at=self._clock.now(),
        )
        async with self._uow() as uow:
            await self._observe(uow, [report])
            await uow.commit()
            current = await uow.instances.get(instance.organization_id, instance.id)
        return current or instance


class ConnectInstanceHandler(_Onboarding):
    """Creates or restarts the instance's session at its provider, its webhook pointed at the gateway, and
    answers the connection with its QR code (and the pairing code asked for)."""

    async def __call__(self, command: ConnectInstance) -> InstanceConnection:
        phone = ""
        if command.pairing_phone:
            phone = normalize_phone(command.pairing_phone) or ""
            if not phone:
                raise InvalidArgument.of(
                    "pairing_phone", "must be an E.164 number: country code and number, 8 to 15 digits"
                )
        instance = await self._instance(command.organization_id, command.instance_id)
        view = await self._sessions.connect(instance, pairing_phone=phone)
        instance = await self._report(instance, view.state, view.reason)
        qr = view.qr if instance.connection_state is ConnectionState.QR_REQUIRED else None
        return InstanceConnection(instance=instance, qr=qr, pairing_code=view.pairing_code)


class LogoutInstanceHandler(_Onboarding):
    """Unlinks the number at its provider (the session stays, ready for a new QR code): LOGGED_OUT."""

    async def __call__(self, command: InstanceAtProvider) -> Instance:
        instance = await self._instance(command.organization_id, command.instance_id)
        await self._sessions.logout(instance)
        return await self._report(instance, ConnectionState.LOGGED_OUT, "logged out by request")


class DeleteInstanceHandler(_Onboarding):
    """Deletes the session at the provider; the registry keeps the instance, LOGGED_OUT, so what it sent
    stays explainable. ConnectInstance makes a new session."""

    async def __call__(self, command: InstanceAtProvider) -> Instance:
        instance = await self._instance(command.organization_id, command.instance_id)
        await self._sessions.delete(instance)
        return await self._report(instance, ConnectionState.LOGGED_OUT, "session deleted by request")


class InstanceConnectionReader(_Onboarding):
    """Where an instance's connection stands now, for WatchInstance: the stored state, and while a QR code
    is required the one the provider shows now (None when it has none yet, or does not answer)."""

    async def current(self, command: InstanceAtProvider) -> InstanceConnection:
        return await self.with_qr(await self._instance(command.organization_id, command.instance_id))

    async def at_change(self, instance: Instance, change: InstanceChange) -> InstanceConnection:
        """The connection as `change` left it: the stored instance when nothing changed since (with its
        reason and, while required, the QR code), else the change's own state, so a state that did not
        last (CONNECTED, then DISCONNECTED) is still told."""
        current = await self._instance(instance.organization_id, instance.id)
        if current.version == change.version:
            return await self.with_qr(current)
        then = current.snapshot()
        then.version, then.connection_state = change.version, change.state
        then.connection_reason, then.connection_observed_at = "", change.changed_at
        return await self.with_qr(then)

    async def with_qr(self, instance: Instance) -> InstanceConnection:
        if instance.connection_state is not ConnectionState.QR_REQUIRED:
            return InstanceConnection(instance=instance)
        return InstanceConnection(instance=instance, qr=await self.qr(instance))

    async def qr(self, instance: Instance) -> QrImage | None:
        """None also when the provider cannot say now: the state still goes out, the code with the next
        refresh."""
        try:
            return await self._sessions.qr(instance)
        except (Unavailable, FailedPrecondition):
            return None
