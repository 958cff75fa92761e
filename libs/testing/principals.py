"""A stand-in for the authentication interceptor in tests: the caller is named in plain metadata
(`x-test-principal: <organization>/<role>/<api key id>` or `service`) and set for the call's duration,
as the real interceptor sets the authenticated one. Never wired into a service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc

from libs.rpc.principal import reset_principal, set_principal
from libs.rpc.server import AsyncUnaryBehaviour
from libs.seedwork.access import Principal, Role

HEADER = "x-test-principal"


def as_metadata(principal: Principal) -> tuple[tuple[str, str], ...]:
    role = "" if principal.role is None else principal.role.name
    value = (
        "service" if principal.is_service else f"{principal.organization_id}/{role}/{principal.api_key_id}"
    )
    return ((HEADER, value),)


def _parse(value: str) -> Principal:
    if value == "service":
        return Principal.service()
    organization_id, role, api_key_id = value.split("/")
    return Principal(organization_id, Role[role], api_key_id)


class TestPrincipalInterceptor(grpc.aio.ServerInterceptor):
    __test__ = False  # not a pytest class

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        named = dict(handler_call_details.invocation_metadata or ()).get(HEADER)
        behaviour = cast("AsyncUnaryBehaviour[Any, Any]", handler.unary_unary)

        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = set_principal(None if named is None else _parse(str(named)))
            try:
                return await behaviour(request, context)
            finally:
                reset_principal(token)

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
