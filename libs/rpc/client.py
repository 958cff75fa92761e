"""Client channels where no call can go without a deadline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


class DefaultDeadline(grpc.aio.UnaryUnaryClientInterceptor):
    """Sets a deadline on every call that did not set its own."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        if client_call_details.timeout is None:
            client_call_details = client_call_details._replace(timeout=self._seconds)  # type: ignore[attr-defined]
        return await continuation(client_call_details, request)


def open_channel(target: str, *, default_deadline: float = 5.0) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, interceptors=[DefaultDeadline(default_deadline)])
