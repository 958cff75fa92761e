"""The one place where domain errors become gRPC status codes."""

from __future__ import annotations

from typing import cast

import grpc
from google.protobuf import any_pb2

# Imported from each module: googleapis-common-protos ships .pyi files, which mypy reads this way.
from google.rpc.code_pb2 import Code
from google.rpc.error_details_pb2 import BadRequest
from google.rpc.status_pb2 import Status
from grpc_status import rpc_status

from libs.seedwork.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    InvariantViolated,
    NotFound,
    PermissionDenied,
    Unavailable,
)

_CODES: list[tuple[type[DomainError], Code]] = [
    (InvalidArgument, Code.INVALID_ARGUMENT),
    (NotFound, Code.NOT_FOUND),
    (AlreadyExists, Code.ALREADY_EXISTS),
    (PermissionDenied, Code.PERMISSION_DENIED),
    (FailedPrecondition, Code.FAILED_PRECONDITION),
    (InvariantViolated, Code.FAILED_PRECONDITION),
    (Unavailable, Code.UNAVAILABLE),
]


# What a client can read back: gRPC clients refuse trailers past 16 KiB (and may from 8 KiB), and the
# message and the BadRequest both travel in them. A request can break a rule once per item of a long list
# (1,000 undefined enum numbers: 126 KB of violations, and the caller got RESOURCE_EXHAUSTED instead of
# INVALID_ARGUMENT); the first few violations, each cut short, tell it what to fix.
MAX_REPORTED_VIOLATIONS = 8
MAX_VIOLATION_TEXT = 100


def status_for(exc: DomainError) -> grpc.Status:
    code = next((code for kind, code in _CODES if isinstance(exc, kind)), Code.UNKNOWN)
    if not isinstance(exc, InvalidArgument) or not exc.violations:
        return rpc_status.to_status(Status(code=code, message=str(exc)))
    reported = [
        BadRequest.FieldViolation(field=_cut(v.field), description=_cut(v.description))
        for v in exc.violations[:MAX_REPORTED_VIOLATIONS]
    ]
    message = f"{exc.message}: " + "; ".join(f"{v.field}: {v.description}" for v in reported)
    if len(exc.violations) > len(reported):
        message += f"; and {len(exc.violations) - len(reported)} more"
    detail = any_pb2.Any()
    detail.Pack(BadRequest(field_violations=reported))
    return rpc_status.to_status(Status(code=code, message=message, details=[detail]))


def _cut(text: str) -> str:
    return text if len(text) <= MAX_VIOLATION_TEXT else text[: MAX_VIOLATION_TEXT - 1] + "…"


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """Client side: the BadRequest field violations of a failed call, by field."""
    violations: dict[str, str] = {}
    # grpc_status reads code(), details() and trailing_metadata(): a synchronous channel raises the
    # grpc.Call itself, and grpc.aio's AioRpcError has the same three methods.
    status: Status | None = rpc_status.from_call(cast(grpc.Call, error))
    if status is None:
        return violations
    for detail in status.details:
        bad_request = BadRequest()
        if detail.Unpack(bad_request):  # False, and nothing read, for a detail of another type
            violations.update({v.field: v.description for v in bad_request.field_violations})
    return violations
