"""The one place where domain errors become gRPC status codes."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from libs.seedwork.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    InvariantViolated,
    NotFound,
)

_CODES: list[tuple[type[DomainError], int]] = [
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (NotFound, code_pb2.NOT_FOUND),
    (AlreadyExists, code_pb2.ALREADY_EXISTS),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
    (InvariantViolated, code_pb2.FAILED_PRECONDITION),
]


def status_for(exc: DomainError) -> grpc.Status:
    code = next((code for kind, code in _CODES if isinstance(exc, kind)), code_pb2.UNKNOWN)
    status = status_pb2.Status(code=code, message=str(exc))
    if isinstance(exc, InvalidArgument):
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in exc.violations
                ]
            )
        )
        status.details.append(detail)
    return rpc_status.to_status(status)


def field_violations(error: grpc.aio.AioRpcError | grpc.RpcError) -> dict[str, str]:
    """Client side: the BadRequest field violations of a failed call, by field."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    violations: dict[str, str] = {}
    if status is None:
        return violations
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.update({v.field: v.description for v in bad_request.field_violations})
    return violations
