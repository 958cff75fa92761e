"""The instance's session at its provider, through the adapters of `libs/providers` (their session port):
the order of the calls, the webhook's URL and secret, and the provider's errors as the registry's."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

import aiohttp

from libs.providers import build_sessions
from libs.providers.directory import AdapterDirectory, Endpoints, InstanceTokens
from libs.providers.port import ErrorClass, ProviderError
from libs.providers.sessions import (
    ProviderSessions,
    QrCode,
    SessionWebhook,
    is_session_not_found,
)
from libs.seedwork.errors import FailedPrecondition, Reason, Unavailable
from libs.seedwork.shared_kernel import ConnectionState, Provider
from libs.webhooks import webhook_secret, webhook_url
from reputation_service.application.onboarding_ports import QrImage, SessionView
from reputation_service.domain.instance import Instance
from reputation_service.infrastructure import metrics

T = TypeVar("T")


class ProviderInstanceSessions:
    """`InstanceSessions` over one adapter per configured provider (wuzapi: one per instance, its token
    being the session). The webhook goes to `<gateway_url>/webhooks/<provider>/<instance id>`, signed with
    the instance's secret derived from the webhook master key, exactly what the gateway checks."""

    def __init__(
        self, adapters: AdapterDirectory[ProviderSessions], *, gateway_url: str, master_key: bytes
    ) -> None:
        self._adapters = adapters
        self._gateway_url = gateway_url
        self._master_key = master_key

    @classmethod
    def from_endpoints(
        cls,
        endpoints: Endpoints,
        *,
        session: aiohttp.ClientSession,
        timeout_seconds: float,
        gateway_url: str,
        master_key: bytes,
        instance_tokens: InstanceTokens | None = None,
    ) -> ProviderInstanceSessions:
        adapters = AdapterDirectory.built(
            lambda provider, url, key: build_sessions(
                provider.value, url, key, session=session, timeout=timeout_seconds
            ),
            endpoints,
            instance_tokens,
        )
        return cls(adapters, gateway_url=gateway_url, master_key=master_key)

    def configured(self) -> frozenset[Provider]:
        return frozenset(self._adapters.configured())

    def _adapter(self, instance: Instance) -> ProviderSessions:
        adapter = self._adapters.adapter(instance.provider, instance.provider_instance_ref)
        if adapter is None:
            raise FailedPrecondition(
                f"no {instance.provider.value} endpoint is configured for the registry "
                f"(REPUTATION_{instance.provider.value}_URL and _API_KEY)",
                reason=Reason.PROVIDER_NOT_CONFIGURED,
                metadata={"provider": instance.provider.value},
            )
        return adapter

    async def connect(self, instance: Instance, *, pairing_phone: str) -> SessionView:
        adapter = self._adapter(instance)
        outcome = "OK"
        try:
            if not self._gateway_url or not self._master_key:
                raise FailedPrecondition(
                    "the registry cannot point sessions at the gateway: REPUTATION_GATEWAY_PUBLIC_URL and "
                    "REPUTATION_WEBHOOK_MASTER_KEY must be set",
                    reason=Reason.GATEWAY_NOT_CONFIGURED,
                )
            if pairing_phone and not adapter.offers_pairing_code:
                raise FailedPrecondition(
                    f"{instance.provider.value} links devices by QR code only: connect without pairing_phone",
                    reason=Reason.PAIRING_PHONE_UNSUPPORTED,
                    metadata={"provider": instance.provider.value, "field": "pairing_phone"},
                )
            return await _translated(self._connect(adapter, instance, pairing_phone))
        except (FailedPrecondition, Unavailable) as error:
            outcome = "UNAVAILABLE" if isinstance(error, Unavailable) else "FAILED_PRECONDITION"
            raise
        finally:
            metrics.CONNECTS.labels(instance.provider.value, outcome).inc()

    async def _connect(
        self, adapter: ProviderSessions, instance: Instance, pairing_phone: str
    ) -> SessionView:
        ref = instance.provider_instance_ref
        webhook = SessionWebhook(
            url=webhook_url(self._gateway_url, instance.provider.value.lower(), instance.id),
            secret=webhook_secret(self._master_key, instance.id),
        )
        # The webhook first, so the session's first QR event already reaches the gateway.
        await adapter.set_webhook(ref, webhook)
        status = await adapter.start_session(ref)
        state, qr = status.state, status.qr
        if state is not ConnectionState.CONNECTED and qr is None:
            qr = await adapter.get_qr(ref)
        if qr is not None and state is not ConnectionState.CONNECTED:
            state = ConnectionState.QR_REQUIRED  # a code to scan is waiting, whatever the start said
        pairing_code = ""
        if pairing_phone and state is not ConnectionState.CONNECTED:
            pairing_code = (await adapter.request_pairing_code(ref, pairing_phone)).code
        return SessionView(state=state, reason=status.reason, qr=_image(qr), pairing_code=pairing_code)

    async def qr(self, instance: Instance) -> QrImage | None:
        adapter = self._adapter(instance)
        return _image(await _translated(adapter.get_qr(instance.provider_instance_ref)))

    async def status(self, instance: Instance) -> SessionView:
        adapter = self._adapter(instance)
        try:
            status = await _translated(adapter.session_status(instance.provider_instance_ref), known=False)
        except _SessionNotFound:
            # Not one the registry can judge: a number registered by hand whose session the provider
            # makes on first use (the simulator), or one set up elsewhere. The sends will say.
            return SessionView(state=ConnectionState.UNKNOWN, reason="session not found at the provider")
        return SessionView(state=status.state, reason=status.reason, qr=_image(status.qr))

    async def logout(self, instance: Instance) -> None:
        await _translated(self._adapter(instance).logout_session(instance.provider_instance_ref))

    async def delete(self, instance: Instance) -> None:
        await _translated(self._adapter(instance).delete_session(instance.provider_instance_ref))


class _SessionNotFound(Exception):
    pass


def _image(qr: QrCode | None) -> QrImage | None:
    return QrImage(code=qr.raw, png=qr.png) if qr is not None else None


async def _translated(call: Awaitable[T], *, known: bool = True) -> T:
    """The provider's error as the registry's: a provider that does not answer (or fails) is
    Unavailable, a refusal FailedPrecondition with the provider's code (log-safe)."""
    try:
        return await call
    except ProviderError as error:
        if not known and is_session_not_found(error):
            raise _SessionNotFound from error
        if error.error_class is ErrorClass.TRANSIENT:
            raise Unavailable(
                f"the provider did not answer ({error.code}); try again",
                reason=Reason.PROVIDER_UNAVAILABLE,
                metadata={"provider_code": error.code},
                # The provider's own hint (Retry-After), else Unavailable's default.
                retry_delay=timedelta(seconds=error.retry_after) if error.retry_after else None,
            ) from error
        if is_session_not_found(error):
            raise FailedPrecondition(
                "the provider has no session for this instance: connect it",
                reason=Reason.PROVIDER_SESSION_MISSING,
            ) from error
        raise FailedPrecondition(
            f"the provider refused ({error.code})",
            reason=Reason.PROVIDER_REFUSED,
            metadata={"provider_code": error.code},
        ) from error
