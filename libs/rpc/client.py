"""Client channels where no call can go without a deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

Request = TypeVar("Request")
Response = TypeVar("Response")


class DefaultDeadline(grpc.aio.UnaryUnaryClientInterceptor):
    """Sets a deadline on every call that did not set its own."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Request], Awaitable[grpc.aio.UnaryUnaryCall[Request, Response]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Request,
    ) -> grpc.aio.UnaryUnaryCall[Request, Response]:
        if client_call_details.timeout is None:
            client_call_details = grpc.aio.ClientCallDetails(
                client_call_details.method,
                self._seconds,
                client_call_details.metadata,
                client_call_details.credentials,
                client_call_details.wait_for_ready,
            )
        return await continuation(client_call_details, request)


def open_channel(target: str, *, default_deadline: float = 5.0) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, interceptors=[DefaultDeadline(default_deadline)])
