"""Run a service in-process, exactly as `__main__` wires it, on a free port: for integration tests.

Its server authenticates every call as in production. The channel tests get acts, for each request, as an
OWNER key of the organization the request names (minted and put straight into that service's key table),
and as the service credential for the RPCs only the service may call: tests written before authentication
need no change. `RunningService.key`, `.channel_with` and `.service_credential` call any other way."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import message_factory
from pydantic import SecretStr

from libs.config import ServiceSettings
from libs.rpc.access import MethodRule, find_service, service_rules
from libs.rpc.auth import Authenticator
from libs.rpc.client import AmendingInterceptor, DefaultDeadline, for_every_call, open_channel, with_metadata
from libs.rpc.keys import KeyRecord, KeyTable
from libs.rpc.server import GrpcServer
from libs.runtime import ServiceParts
from libs.seedwork.access import Role
from libs.seedwork.api_keys import issue_key
from libs.seedwork.ids import new_id

S = TypeVar("S", bound=ServiceSettings)


def new_service_token() -> str:
    return secrets.token_urlsafe(32)


def with_service_token(settings: S) -> S:
    """`settings`, with a service credential of its own when it has none (every process has one)."""
    if settings.service_token is not None:
        return settings
    return settings.model_copy(update={"service_token": SecretStr(new_service_token())})


def install_key(
    keys: KeyTable,
    organization_id: str,
    role: Role = Role.OWNER,
    *,
    revoked: bool = False,
    api_key_id: str | None = None,
) -> str:
    """A new API key of `organization_id` with `role` (and, when given, that key id), known to the service
    at once; its secret."""
    issued = issue_key()
    keys.put(
        KeyRecord.of(
            prefix=issued.prefix,
            sha256=issued.sha256,
            organization_id=organization_id,
            role=role,
            api_key_id=api_key_id or new_id(),
            revoked=revoked,
        )
    )
    return issued.secret


class ActAsOwners(AmendingInterceptor):
    """Presents, on each call that names no caller of its own, the service credential if only the service
    may call the RPC, else an OWNER key of the organization the request names ("" included: the server then
    fills in ""). One key per organization, installed in the served process's table when first needed."""

    def __init__(self, keys: KeyTable, service_credential: str | None) -> None:
        self._keys = keys
        self._service = (("authorization", f"Bearer {service_credential}"),) if service_credential else ()
        self._by_organization: dict[str, tuple[tuple[str, str], ...]] = {}
        self._rules: dict[str, MethodRule] = {}

    def _rule(self, method: str) -> MethodRule | None:
        if method not in self._rules:
            service = method.strip("/").split("/")[0]
            if find_service(service) is not None:
                self._rules.update(service_rules(service))
        return self._rules.get(method)

    def _credential(self, method: str, request: object) -> tuple[tuple[str, str], ...]:
        rule = self._rule(method)
        if rule is not None and rule.min_role is None and rule.service:
            return self._service
        organization = _organization_named(method, request)
        if organization not in self._by_organization:
            secret = install_key(self._keys, organization, Role.OWNER)
            self._by_organization[organization] = (("authorization", f"Bearer {secret}"),)
        return self._by_organization[organization]

    def amend(self, details: grpc.aio.ClientCallDetails, request: object) -> grpc.aio.ClientCallDetails:
        if any(key == "authorization" for key, _ in details.metadata or ()):
            return details  # the test names its own caller
        method = details.method
        method = method.decode() if isinstance(method, bytes) else method
        return with_metadata(details, self._credential(method, request))


def _organization_named(method: str, request: object) -> str:
    """The request's organization_id; for a raw body, as the server will decode it ("" if it does not)."""
    if isinstance(request, bytes):
        service_name, _, method_name = method.strip("/").partition("/")
        service = find_service(service_name)
        found = service.methods_by_name.get(method_name) if service is not None else None
        if found is None:
            return ""
        try:
            request = message_factory.GetMessageClass(found.input_type).FromString(request)
        except Exception:
            return ""
    organization = getattr(request, "organization_id", "")
    return organization if isinstance(organization, str) else ""


def acting_channel(
    address: str, authenticator: Authenticator, service_credential: str | None
) -> grpc.aio.Channel:
    """A channel to a served process acting as owners of every organization (ActAsOwners); without a
    service credential, the service-only RPCs are called with none."""
    return grpc.aio.insecure_channel(
        address,
        interceptors=[
            DefaultDeadline(5.0),
            *for_every_call(ActAsOwners(authenticator.keys, service_credential)),
        ],
    )


@dataclass
class RunningService:
    address: str
    channel: grpc.aio.Channel  # acts as an OWNER of each request's organization (ActAsOwners)
    parts: ServiceParts
    service_credential: str

    @property
    def keys(self) -> KeyTable:
        assert self.parts.authenticator is not None
        return self.parts.authenticator.keys

    def key(
        self,
        organization_id: str,
        role: Role = Role.OWNER,
        *,
        revoked: bool = False,
        api_key_id: str | None = None,
    ) -> str:
        """A new key of the organization, known to this service at once."""
        return install_key(self.keys, organization_id, role, revoked=revoked, api_key_id=api_key_id)

    def channel_with(self, credential: str | None) -> grpc.aio.Channel:
        """A channel presenting `credential` (a key, the service credential) on every call, or nothing."""
        return open_channel(self.address, credential=credential)


@asynccontextmanager
async def running_service(
    build: Callable[..., Awaitable[ServiceParts]], settings: ServiceSettings, **build_kwargs: Any
) -> AsyncIterator[RunningService]:
    settings = with_service_token(settings)
    parts = await build(settings, **build_kwargs)
    assert parts.authenticator is not None, "a service's server authenticates (libs.bootstrap)"
    server = GrpcServer(
        parts.bindings,
        host="127.0.0.1",
        port=0,
        max_receive_message_bytes=settings.grpc_max_receive_bytes,
        outages=parts.outages,
        authenticator=parts.authenticator,
    )
    port = await server.start()
    stop = asyncio.Event()
    workers = [asyncio.create_task(worker(stop)) for worker in parts.workers]
    address = f"127.0.0.1:{port}"
    credential = settings.service_credential()
    assert credential is not None
    channel = acting_channel(address, parts.authenticator, credential)
    try:
        yield RunningService(address, channel, parts, credential)
    finally:
        stop.set()
        await channel.close()
        await server.stop(1.0)
        await asyncio.wait(workers, timeout=5) if workers else None
        for task in workers:
            task.cancel()
        if parts.close is not None:
            await parts.close()
