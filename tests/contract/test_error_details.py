"""Every RPC of every served service answers its errors with the details of docs/contracts.md ("Errors"):
a google.rpc.ErrorInfo of domain whatlead.io and a documented reason, BadRequest on bad fields. Over the
real services, started as tests/security/test_cross_tenant.py starts them (one organization's resources
each), through the RPCs the server's reflection lists: a new RPC is checked before it ships.

Per RPC: no key (UNAUTHENTICATED), a body that does not decode (MALFORMED_REQUEST), the empty request
(whatever it answers, an error carries its details), another organization's key naming this one
(FOREIGN_ORGANIZATION), and another organization on this organization's ids (a *_NOT_FOUND reason naming
the id)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from libs.rpc.access import find_service, method_rule
from libs.rpc.errors import ERROR_DOMAIN, error_info, field_violations
from libs.seedwork.access import Role
from libs.seedwork.errors import Reason
from libs.seedwork.ids import new_id
from tests.security.test_cross_tenant import SUBJECTS, Subject, gate_subject, reflected_methods, request_for
from whatlead.common.v1 import common_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc

# A field of number 31 with wire type 7, which protobuf does not have: no request message decodes it.
UNDECODABLE = b"\xff\x01"
# A stream answers its errors before its first message; one that has nothing to say yet is left here.
STREAM_WAIT_SECONDS = 3


@pytest.fixture(params=sorted(SUBJECTS))
async def subject(request, migrated_database, subject_root, redis_prefix, jetstream, redis_client):
    start, _ = SUBJECTS[request.param]
    async with start(
        migrated_database=migrated_database, subject_root=subject_root, redis_prefix=redis_prefix
    ) as s:
        yield request.param, s


async def failure(
    subject: Subject, method: MethodDescriptor, body: bytes, credential: str | None
) -> grpc.aio.AioRpcError | None:
    """How the call ended, None when it answered (a stream: its first message, or nothing yet)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    channel = subject.service.channel_with(credential)

    def raw(b: bytes) -> bytes:
        return b

    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=raw, response_deserializer=raw)(
                body, timeout=STREAM_WAIT_SECONDS
            )
            try:
                await stream.read()
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED:  # the client's own: nothing to say yet
                    return None
                raise
            stream.cancel()
            return None
        await channel.unary_unary(path, request_serializer=raw, response_deserializer=raw)(body, timeout=10)
        return None
    except grpc.aio.AioRpcError as error:
        return error
    finally:
        await channel.close()


def problems_of(
    error: grpc.aio.AioRpcError | None, code: grpc.StatusCode | None, reasons: set[str] | None
) -> list[str]:
    """What is wrong with an error answer: not the expected code, no ErrorInfo, an undocumented reason."""
    if error is None:
        return [] if code is None else [f"answered, expected {code.name}"]
    found = []
    if code is not None and error.code() is not code:
        found.append(f"{error.code().name}, expected {code.name}")
    info = error_info(error)
    if info is None:
        return [*found, f"{error.code().name} without ErrorInfo"]
    if info.domain != ERROR_DOMAIN or info.reason not in set(Reason):
        found.append(f"ErrorInfo {info.domain}/{info.reason}")
    if reasons is not None and info.reason not in reasons:
        found.append(f"reason {info.reason}, expected one of {sorted(reasons)}")
    if info.reason == Reason.INVALID_ARGUMENT and not field_violations(error):
        found.append("INVALID_ARGUMENT without BadRequest field violations")
    return found


NOT_FOUND_REASONS = {r.value for r in Reason if r.value.endswith("NOT_FOUND")}


async def test_every_rpc_answers_its_errors_with_their_details(subject):
    service_name, s = subject
    _, rows = SUBJECTS[service_name]
    served = await asyncio.to_thread(reflected_methods, s.service.address, service_name)
    assert sorted(served) == sorted(rows), "every RPC the server has needs a row (tests/security)"
    descriptor = find_service(service_name)
    assert descriptor is not None
    other = f"org-{new_id()[-12:]}"
    owner, foreign = s.service.key(s.organization, Role.OWNER), s.service.key(other, Role.OWNER)
    mismatches: list[str] = []
    for name in served:
        method = descriptor.methods_by_name[name]
        rule = method_rule(method)
        owner_admitted = rule.min_role is not None and rule.min_role <= Role.OWNER
        admitted = owner if owner_admitted else s.service.service_credential
        empty = request_for(method, s.organization, {}).SerializeToString()
        checks = [
            (
                "no key",
                await failure(s, method, empty, None),
                grpc.StatusCode.UNAUTHENTICATED,
                {"UNAUTHENTICATED"},
            ),
            (
                "a body that does not decode",
                await failure(s, method, UNDECODABLE, admitted),
                grpc.StatusCode.INVALID_ARGUMENT,
                {"MALFORMED_REQUEST"},
            ),
            ("the empty request", await failure(s, method, empty, admitted), None, None),
        ]
        if rule.scoped:
            checks.append(
                (
                    "another organization's key",
                    await failure(s, method, empty, foreign),
                    grpc.StatusCode.PERMISSION_DENIED,
                    {"FOREIGN_ORGANIZATION" if owner_admitted else "PERMISSION_DENIED"},
                )
            )
        if rows[name].foreign_id:
            ours = request_for(method, other, s.ids | s.fields).SerializeToString()
            error = await failure(s, method, ours, foreign)
            expected = (grpc.StatusCode.NOT_FOUND, NOT_FOUND_REASONS)
            checks.append(("another organization on our ids", error, *expected))
            info = error_info(error) if error is not None else None
            if info is not None and not set(info.metadata.values()) & set(s.ids.values()):
                mismatches.append(f"{name}: NOT_FOUND names no id in its metadata ({dict(info.metadata)})")
        mismatches += [
            f"{name}, {who}: {problem}"
            for who, error, code, reasons in checks
            for problem in problems_of(error, code, reasons)
        ]
    assert mismatches == []


# --- specific details ------------------------------------------------------------------------------------


@pytest.fixture
async def gate(migrated_database, subject_root, redis_prefix, jetstream, redis_client):
    async with gate_subject(
        migrated_database=migrated_database, subject_root=subject_root, redis_prefix=redis_prefix
    ) as s:
        yield s, gate_pb2_grpc.GateServiceStub(s.service.channel)


def create(organization: str, **fields) -> gate_pb2.CreateIntentRequest:
    request = {
        "organization_id": organization,
        "target": common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value="5511987654321"),
        "type": common_pb2.MESSAGE_TYPE_TEXT,
        "purpose": common_pb2.PURPOSE_DISPATCH,
        "payload": common_pb2.MessagePayload(text=common_pb2.TextPayload(text="hello")),
    }
    return gate_pb2.CreateIntentRequest(**{**request, **fields})


async def test_a_reused_idempotency_key_names_the_original_intent_in_its_metadata(gate):
    s, stub = gate
    other_body = create(
        s.organization,
        idempotency_key="k-1",  # the subject's intent was created with it
        payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text="another text")),
    )
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await stub.CreateIntent(other_body, timeout=10)
    info = error_info(reused.value)
    assert reused.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert info is not None and (info.reason, info.domain) == ("IDEMPOTENCY_KEY_REUSED", ERROR_DOMAIN)
    assert info.metadata["intent_id"] == s.ids["intent_id"] and info.metadata["idempotency_key"] == "k-1"


async def test_bad_fields_are_named_in_english_with_a_bad_request(gate):
    s, stub = gate
    expires_at = Timestamp()
    expires_at.FromDatetime(datetime.now(UTC) + timedelta(days=5))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateIntent(
            create(s.organization, type=common_pb2.MESSAGE_TYPE_AUDIO, expires_at=expires_at), timeout=10
        )
    info = error_info(refused.value)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info is not None and info.reason == "INVALID_ARGUMENT"
    assert field_violations(refused.value) == {
        "payload": "an AUDIO intent needs an audio payload",
        "expires_at": "must be at most 72 hours after the intent may be sent",
    }
