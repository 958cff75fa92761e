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
)

_CODES: list[tuple[type[DomainError], Code]] = [
    (InvalidArgument, Code.INVALID_ARGUMENT),
    (NotFound, Code.NOT_FOUND),
    (AlreadyExists, Code.ALREADY_EXISTS),
    (FailedPrecondition, Code.FAILED_PRECONDITION),
    (InvariantViolated, Code.FAILED_PRECONDITION),
]


def status_for(exc: DomainError) -> grpc.Status:
    code = next((code for kind, code in _CODES if isinstance(exc, kind)), Code.UNKNOWN)
    status = Status(code=code, message=str(exc))
    if isinstance(exc, InvalidArgument) and exc.violations:
        detail = any_pb2.Any()
        detail.Pack(
            BadRequest(
                field_violations=[
                    BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in exc.violations
                ]
            )
        )
        status.details.append(detail)
    return rpc_status.to_status(status)


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
