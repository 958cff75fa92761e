"""Every RPC of every served service, found through the running server's reflection, called by every kind of
caller: no key, broken keys, each role, the service credential, another organization's key. Each answer
must be the one docs/security.md's table gives, and nothing of one organization may reach another.

A service joins with one entry in SUBJECTS: how to start it with one organization's resources, and a row
per RPC. An RPC the server has and the entry has no row for fails the suite (a new RPC is checked before
it ships)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from libs.rpc.access import MethodRule, find_service, method_rule
from libs.seedwork.access import Role
from libs.seedwork.ids import new_id
from libs.testing.services import RunningService, running_service
from libs.testing.waiting import eventually
from tests.conftest import NATS_URL, REDIS_URL
from whatlead.common.v1 import common_pb2
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


@dataclass(frozen=True)
class Row:
    """`foreign_id`: another organization's key, naming its own organization, on this organization's
    resource id answers NOT_FOUND (the RPC takes an id the subject's `ids` has)."""

    foreign_id: bool = False


@dataclass
class Subject:
    """A running service and the ids of one organization's resources in it, by request field name."""

    service: RunningService
    organization: str
    ids: dict[str, str] = field(default_factory=dict)
    # Other request fields the calls carry, by name: not ids, so not looked for in another's answers.
    fields: dict[str, str] = field(default_factory=dict)


SubjectFactory = Callable[..., AbstractAsyncContextManager[Subject]]


# --- The services ----------------------------------------------------------------------------------------


@asynccontextmanager
async def reputation_subject(migrated_database, subject_root, **_: object) -> AsyncIterator[Subject]:
    from reputation_service.bootstrap import build
    from reputation_service.config import ReputationSettings

    settings = ReputationSettings(
        database_url=migrated_database("reputation_service"), nats_url=NATS_URL, subject_root=subject_root
    )
    async with running_service(build, settings) as service:
        organization = f"org-{new_id()[-12:]}"
        registered = await reputation_pb2_grpc.ReputationServiceStub(service.channel).RegisterInstance(
            reputation_pb2.RegisterInstanceRequest(
                organization_id=organization,
                display_name="sales",
                provider=common_pb2.PROVIDER_SIMULATOR,
                provider_instance_ref=f"ref-{new_id()[-12:]}",
                phone="5511987654321",
                purposes=[common_pb2.PURPOSE_DISPATCH],
            )
        )
        yield Subject(service, organization, {"instance_id": registered.instance.id})


@asynccontextmanager
async def gate_subject(migrated_database, subject_root, redis_prefix, **_: object) -> AsyncIterator[Subject]:
    from gate_service.bootstrap import build
    from gate_service.config import GateSettings
    from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc

    settings = GateSettings(
        database_url=migrated_database("gate_service"),
        nats_url=NATS_URL,
        subject_root=subject_root,
        redis_url=REDIS_URL,
        redis_key_prefix=f"{redis_prefix}sec:{new_id()[-8:]}:",
        consumer_durable_prefix=f"sec-{new_id()[-12:]}",
        projection_grace_seconds=0,
    )
    async with running_service(build, settings) as service:
        organization = f"org-{new_id()[-12:]}"
        created = await gate_pb2_grpc.GateServiceStub(service.channel).CreateIntent(
            gate_pb2.CreateIntentRequest(
                organization_id=organization,
                idempotency_key="k-1",
                target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value="5511987654321"),
                type=common_pb2.MESSAGE_TYPE_TEXT,
                purpose=common_pb2.PURPOSE_DISPATCH,
                payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text="hello")),
            )
        )
        yield Subject(service, organization, {"intent_id": created.intent.id})


@asynccontextmanager
async def executor_subject(migrated_database, subject_root, **_: object) -> AsyncIterator[Subject]:
    from executor_service.bootstrap import Executor, assemble
    from executor_service.infrastructure.proto_mapping import create_job_command
    from libs.provider_simulator import run_simulator
    from libs.seedwork.shared_kernel import Provider
    from tests.executor_service.integration.harness import API_KEY, approved, settings

    assembled: list[Executor] = []

    async def build(config):
        assembled.append(await assemble(config))
        return assembled[0].parts()

    async with run_simulator(api_key=API_KEY) as simulator:
        config = settings(migrated_database("executor_service"), subject_root, simulator.base_url)
        async with running_service(build, config) as service:
            organization = f"org-{new_id()[-12:]}"
            executor = assembled[0]
            async with executor.unit_of_work() as uow:
                job = await executor.create_job(
                    uow, create_job_command(approved(organization, session="sec-1"), Provider.SIMULATOR)
                )
                await uow.commit()
            assert job is not None
            yield Subject(service, organization, {"job_id": job.id, "intent_id": job.intent_id})


@asynccontextmanager
async def ops_subject(migrated_database, subject_root, **_: object) -> AsyncIterator[Subject]:
    from ops_service.bootstrap import build
    from ops_service.config import OpsSettings
    from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

    settings = OpsSettings(
        database_url=migrated_database("ops_service"), nats_url=NATS_URL, subject_root=subject_root
    )
    async with running_service(build, settings) as service:
        ops = ops_pb2_grpc.OpsServiceStub(service.channel)
        created = await ops.CreateOrganization(
            ops_pb2.CreateOrganizationRequest(name="Acme", owner_user_id="olga")
        )
        organization = created.organization.id
        key = await ops.CreateApiKey(
            ops_pb2.CreateApiKeyRequest(
                organization_id=organization, name="ci", role=ops_pb2.MEMBER_ROLE_MEMBER
            )
        )
        # One change of an intent of the organization, and the position just before it: WatchIntents from
        # there answers with it at once.
        position = await _intent_changed(subject_root, organization)
        # No instance id: ops keeps none of its own (GetInstanceMetrics answers the id it was asked about).
        yield Subject(
            service, organization, {"api_key_id": key.api_key.id}, {"after_position": str(position - 1)}
        )


async def _intent_changed(subject_root: str, organization: str) -> int:
    """An IntentChanged of `organization` on the ops stream, as ops' relay publishes it; its position."""
    import nats

    from libs.messaging import envelope
    from libs.testing.jetstream import meta
    from whatlead.events.v1 import ops_events_pb2
    from whatlead.ops.v1 import ops_pb2

    intent = new_id()
    encoded = envelope.encode(
        ops_events_pb2.IntentChanged(
            meta=meta(organization, intent),
            change=ops_pb2.IntentChange(
                organization_id=organization, intent_id=intent, kind=ops_pb2.INTENT_CHANGE_KIND_CREATED
            ),
        )
    )
    client = await nats.connect(NATS_URL)
    try:
        ack = await client.jetstream().publish(
            envelope.full_subject(subject_root, encoded.subject_suffix),
            encoded.payload,
            headers={envelope.MSG_ID_HEADER: encoded.event_id, envelope.TYPE_HEADER: encoded.type_name},
        )
    finally:
        await client.close()
    return int(ack.seq)


# One entry per service: its start, and a row for each of its RPCs.
SUBJECTS: dict[str, tuple[SubjectFactory, dict[str, Row]]] = {
    "whatlead.gate.v1.GateService": (
        gate_subject,
        {
            "SubmitIntent": Row(),
            "CreateIntent": Row(),
            "DecideIntent": Row(foreign_id=True),
            "GetIntent": Row(foreign_id=True),
            "ListIntents": Row(),
        },
    ),
    "whatlead.executor.v1.ExecutorService": (
        executor_subject,
        {"GetJob": Row(foreign_id=True), "ListJobs": Row(), "RetryJob": Row(foreign_id=True)},
    ),
    "whatlead.ops.v1.OpsService": (
        ops_subject,
        {
            "PauseExecution": Row(),
            "ResumeExecution": Row(),
            "ListControls": Row(),
            "ListPausedControls": Row(),
            "WatchIntents": Row(),
            "GetIntentTimeline": Row(),
            "GetExecutionMetrics": Row(),
            "GetInstanceMetrics": Row(),
            "GetPlan": Row(),
            "SetPlan": Row(),
            "ListPlans": Row(),
            "CreateOrganization": Row(),
            "GetOrganization": Row(),
            "AddMember": Row(),
            "ListMembers": Row(),
            "CreateApiKey": Row(),
            "RevokeApiKey": Row(foreign_id=True),
            "ListApiKeys": Row(),
            "ResolveApiKey": Row(),
            "ListAuditEntries": Row(),
        },
    ),
    "whatlead.reputation.v1.ReputationService": (
        reputation_subject,
        {
            "RegisterInstance": Row(),
            "UpdateInstance": Row(),
            "GetInstance": Row(foreign_id=True),
            "ListInstances": Row(),
            "GetReputation": Row(foreign_id=True),
            "ListReputations": Row(),
            "ListInstanceStates": Row(),
            "GetWindowStats": Row(),
            "GetWarmupPlan": Row(foreign_id=True),
            "GetWarmupSettings": Row(),
            "SetWarmupSettings": Row(),
        },
    ),
}


@pytest.fixture(params=sorted(SUBJECTS))
async def subject(request, migrated_database, subject_root, redis_prefix, jetstream, redis_client):
    start, _ = SUBJECTS[request.param]
    async with start(
        migrated_database=migrated_database, subject_root=subject_root, redis_prefix=redis_prefix
    ) as s:
        yield request.param, s


# --- Calling ---------------------------------------------------------------------------------------------


def reflected_methods(address: str, service_name: str) -> list[str]:
    """The RPCs the server says it has (gRPC reflection: what a client in any language sees)."""
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert service_name in database.get_services()
        file = database.FindFileContainingSymbol(service_name)
        return [
            method.name
            for service in file.service
            if f"{file.package}.{service.name}" == service_name
            for method in service.method
        ]


def request_for(method: MethodDescriptor, organization: str, ids: dict[str, str]) -> Message:
    """The method's request naming `organization`, with every id field the subject has filled in."""
    request = message_factory.GetMessageClass(method.input_type)()
    fields = method.input_type.fields_by_name
    if "organization_id" in fields:
        request.organization_id = organization  # type: ignore[attr-defined]
    for name, value in ids.items():
        if name in fields and fields[name].type == fields[name].TYPE_STRING:
            setattr(request, name, value)
    return request


async def call(
    subject: Subject, method: MethodDescriptor, request: Message, credential: str | None
) -> tuple[grpc.StatusCode, bytes]:
    service = method.containing_service.full_name
    response_type = message_factory.GetMessageClass(method.output_type)
    channel = subject.service.channel_with(credential)
    try:
        if method.server_streaming:
            # A stream's answer is its first message (or how it ended); the caller then leaves.
            stream = channel.unary_stream(
                f"/{service}/{method.name}",
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_type.FromString,
            )(request, timeout=10)
            first = await stream.read()
            stream.cancel()
            return grpc.StatusCode.OK, first.SerializeToString() if isinstance(first, Message) else b""
        invoke = channel.unary_unary(
            f"/{service}/{method.name}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        response = await invoke(request, timeout=10)
        return grpc.StatusCode.OK, response.SerializeToString()
    except grpc.aio.AioRpcError as error:
        return error.code(), b""
    finally:
        await channel.close()


def expected(rule: MethodRule, *, role: Role | None) -> str:
    admitted = rule.service if role is None else (rule.min_role is not None and role >= rule.min_role)
    return "allowed" if admitted else "denied"


def outcome(code: grpc.StatusCode) -> str:
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return "unauthenticated"
    return "denied" if code is grpc.StatusCode.PERMISSION_DENIED else "allowed"


# --- The suite -------------------------------------------------------------------------------------------


async def test_every_rpc_answers_every_caller_as_the_table_says(subject):
    service_name, s = subject
    _, rows = SUBJECTS[service_name]
    served = await asyncio.to_thread(reflected_methods, s.service.address, service_name)
    assert sorted(served) == sorted(rows), "every RPC the server has needs a row here (and no more)"
    descriptor = find_service(service_name)
    assert descriptor is not None
    other = f"org-{new_id()[-12:]}"
    leaks = [s.organization.encode(), *(value.encode() for value in s.ids.values())]
    mismatches = []
    for name in served:
        method = descriptor.methods_by_name[name]
        rule = method_rule(method)
        own = request_for(method, s.organization, s.ids | s.fields)

        async def answer(credential: str | None, request: Message = own) -> str:
            code, _ = await call(s, method, request, credential)  # noqa: B023 (awaited in this iteration)
            return outcome(code)

        checks: list[tuple[str, str, str]] = []  # (caller, expected, got)
        checks.append(("no key", "unauthenticated", await answer(None)))
        checks.append(("malformed key", "unauthenticated", await answer("wl_short")))
        checks.append(("unknown key", "unauthenticated", await answer("wl_abcdefgh_" + "x" * 43)))
        revoked = s.service.key(s.organization, Role.OWNER, revoked=True)
        checks.append(("revoked key", "unauthenticated", await answer(revoked)))
        for role in Role:
            checks.append(
                (role.name, expected(rule, role=role), await answer(s.service.key(s.organization, role)))
            )
        checks.append(("service", expected(rule, role=None), await answer(s.service.service_credential)))
        if rule.scoped:
            foreign = s.service.key(other, Role.OWNER)
            checks.append(("another organization's key", "denied", await answer(foreign)))
            if rule.min_role is not None:
                # Its own organization named, this organization's ids: they do not exist for it, and
                # nothing of this organization comes back.
                code, body = await call(s, method, request_for(method, other, s.ids | s.fields), foreign)
                if rows[name].foreign_id:
                    checks.append(("another organization on our ids", "NOT_FOUND", code.name))
                leaked = [value for value in leaks if value in body]
                checks.append(
                    ("another organization's answer", "no leak", f"leaks {leaked}" if leaked else "no leak")
                )
        mismatches += [
            f"{name} as {who}: expected {want}, got {got}" for who, want, got in checks if want != got
        ]
    assert mismatches == []


async def test_a_key_revoked_in_the_directory_is_refused_within_5_seconds(
    migrated_database, subject_root, jetstream
):
    """Through the real bucket and the service's watch of it, as ops revokes a key."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from libs.messaging.key_directory import ensure_key_directory, put_key
    from libs.seedwork.api_keys import issue_key
    from whatlead.events.v1 import ops_events_pb2
    from whatlead.ops.v1 import ops_pb2

    async with reputation_subject(migrated_database, subject_root) as s:
        issued = issue_key()
        record = ops_events_pb2.ApiKeyCreated(
            api_key=ops_pb2.ApiKey(
                id=new_id(),
                organization_id=s.organization,
                role=ops_pb2.MEMBER_ROLE_MEMBER,
                prefix=issued.prefix,
            ),
            secret_sha256=issued.sha256,
        )
        directory = await ensure_key_directory(jetstream, subject_root)
        method = reputation_pb2.DESCRIPTOR.services_by_name["ReputationService"].methods_by_name[
            "GetInstance"
        ]
        request = request_for(method, "", s.ids)

        async def answered(expected: grpc.StatusCode) -> bool:
            return (await call(s, method, request, issued.secret))[0] is expected

        await put_key(directory, record)
        # The key, unknown at start, works once the directory has it...
        await eventually(lambda: answered(grpc.StatusCode.OK), timeout=5, every=0.02)
        # ...and is refused within 5 s of its revocation.
        record.api_key.revoked_at.CopyFrom(Timestamp(seconds=1_800_000_000))
        await put_key(directory, record)
        await eventually(lambda: answered(grpc.StatusCode.UNAUTHENTICATED), timeout=5, every=0.02)


async def test_a_key_revoked_through_ops_is_refused_by_another_service_within_5_seconds(
    migrated_database, subject_root, jetstream
):
    """The whole path: ops creates and revokes the key; the reputation service, watching the directory ops
    writes, first accepts it, then refuses it within 5 s."""
    from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

    async with (
        ops_subject(migrated_database, subject_root) as ops,
        reputation_subject(migrated_database, subject_root) as reputation,
    ):
        stub = ops_pb2_grpc.OpsServiceStub(ops.service.channel)
        created = await stub.CreateApiKey(
            ops_pb2.CreateApiKeyRequest(
                organization_id=ops.organization, name="ci", role=ops_pb2.MEMBER_ROLE_MEMBER
            )
        )
        method = reputation_pb2.DESCRIPTOR.services_by_name["ReputationService"].methods_by_name[
            "ListInstances"
        ]
        request = request_for(method, "", {})  # the key's own organization

        async def answered(expected: grpc.StatusCode) -> bool:
            return (await call(reputation, method, request, created.secret))[0] is expected

        await eventually(lambda: answered(grpc.StatusCode.OK), timeout=5, every=0.02)
        await stub.RevokeApiKey(
            ops_pb2.RevokeApiKeyRequest(organization_id=ops.organization, api_key_id=created.api_key.id)
        )
        await eventually(lambda: answered(grpc.StatusCode.UNAUTHENTICATED), timeout=5, every=0.02)
