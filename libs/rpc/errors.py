"""The one place where domain errors become gRPC status codes, with the details of AIP-193.

Every error answered carries a google.rpc.Status in the `grpc-status-details-bin` trailer with:
- a google.rpc.ErrorInfo: the error's reason (libs.seedwork.errors.Reason), the domain `whatlead.io`, and
  its metadata (the ids and positions it is about);
- a google.rpc.BadRequest when fields were wrong (one violation per field);
- a google.rpc.RetryInfo when trying again later can succeed (UNAVAILABLE, RESOURCE_EXHAUSTED).
docs/contracts.md lists the reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TypeVar, cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

# Imported from each module: googleapis-common-protos ships .pyi files, which mypy reads this way.
from google.rpc.code_pb2 import Code
from google.rpc.error_details_pb2 import BadRequest, ErrorInfo, RetryInfo
from google.rpc.status_pb2 import Status
from grpc_status import rpc_status

from libs.seedwork.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    InvariantViolated,
    NotFound,
    OutOfRange,
    PermissionDenied,
    Reason,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

DetailT = TypeVar("DetailT", bound=Message)

# The ErrorInfo domain of every error of ours: the service's public name, as AIP-193 asks.
ERROR_DOMAIN = "whatlead.io"

_CODES: list[tuple[type[DomainError], Code]] = [
    (InvalidArgument, Code.INVALID_ARGUMENT),
    (NotFound, Code.NOT_FOUND),
    (AlreadyExists, Code.ALREADY_EXISTS),
    (Unauthenticated, Code.UNAUTHENTICATED),
    (PermissionDenied, Code.PERMISSION_DENIED),
    (FailedPrecondition, Code.FAILED_PRECONDITION),
    (InvariantViolated, Code.FAILED_PRECONDITION),
    (OutOfRange, Code.OUT_OF_RANGE),
    (ResourceExhausted, Code.RESOURCE_EXHAUSTED),
    (Unavailable, Code.UNAVAILABLE),
]

# How long a client waits before retrying a store outage (ADR 0009: health turns NOT_SERVING meanwhile).
STORE_RETRY_DELAY = timedelta(seconds=1)


# What a client can read back: gRPC clients refuse trailers past 16 KiB (and may from 8 KiB), and the
# message and the BadRequest both travel in them. A request can break a rule once per item of a long list
# (1,000 undefined enum numbers: 126 KB of violations, and the caller got RESOURCE_EXHAUSTED instead of
# INVALID_ARGUMENT); the first few violations, each cut short, tell it what to fix.
MAX_REPORTED_VIOLATIONS = 8
MAX_VIOLATION_TEXT = 100
# ErrorInfo metadata holds ids, positions and keys the caller sent (an idempotency key: 128 at most).
MAX_METADATA_TEXT = 256


def status_for(exc: DomainError) -> grpc.Status:
    code = next((code for kind, code in _CODES if isinstance(exc, kind)), Code.UNKNOWN)
    if not isinstance(exc, InvalidArgument) or not exc.violations:
        return status_of(code, str(exc), exc.reason, metadata=exc.metadata, retry_delay=exc.retry_delay)
    reported = [
        BadRequest.FieldViolation(field=_cut(v.field), description=_cut(v.description))
        for v in exc.violations[:MAX_REPORTED_VIOLATIONS]
    ]
    message = f"{exc.message}: " + "; ".join(f"{v.field}: {v.description}" for v in reported)
    if len(exc.violations) > len(reported):
        message += f"; and {len(exc.violations) - len(reported)} more"
    return status_of(
        code,
        message,
        exc.reason,
        metadata=exc.metadata,
        details=[BadRequest(field_violations=reported)],
    )


def status_of(
    code: int,
    message: str,
    reason: Reason,
    *,
    metadata: Mapping[str, str] | None = None,
    retry_delay: timedelta | None = None,
    details: list[Message] | None = None,
) -> grpc.Status:
    """A failed call's status with its ErrorInfo, its other `details` and, given a delay, a RetryInfo."""
    bounded = {key: _cut(value, MAX_METADATA_TEXT) for key, value in (metadata or {}).items()}
    info = ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=bounded)
    packed = [info, *(details or [])]
    if retry_delay is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(retry_delay)
        packed.append(RetryInfo(retry_delay=delay))
    anys = []
    for detail in packed:
        wrapped = any_pb2.Any()
        wrapped.Pack(detail)
        anys.append(wrapped)
    return rpc_status.to_status(Status(code=code, message=message, details=anys))


def _cut(text: str, limit: int = MAX_VIOLATION_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """Client side: the BadRequest field violations of a failed call, by field."""
    violations: dict[str, str] = {}
    for bad_request in _details(error, BadRequest):
        violations.update({v.field: v.description for v in bad_request.field_violations})
    return violations


def error_info(error: grpc.RpcError) -> ErrorInfo | None:
    """Client side: the ErrorInfo of a failed call (reason, domain, metadata), None when it has none."""
    return next(iter(_details(error, ErrorInfo)), None)


def retry_info(error: grpc.RpcError) -> RetryInfo | None:
    """Client side: how long the server asks to wait before retrying a failed call, None when it does not."""
    return next(iter(_details(error, RetryInfo)), None)


def _details(error: grpc.RpcError, kind: type[DetailT]) -> list[DetailT]:
    # grpc_status reads code(), details() and trailing_metadata(): a synchronous channel raises the
    # grpc.Call itself, and grpc.aio's AioRpcError has the same three methods.
    status: Status | None = rpc_status.from_call(cast(grpc.Call, error))
    found = []
    for detail in status.details if status is not None else ():
        message = kind()
        if detail.Unpack(message):  # False, and nothing read, for a detail of another type
            found.append(message)
    return found
