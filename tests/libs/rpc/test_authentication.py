"""Who may call: keys and the service credential authenticated from the in-memory key table, each RPC's
access option enforced, an organization key held to its organization. The server runs on loopback with a
servicer that records what reached it and who it saw as the caller; no other server is needed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import nats.errors
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2
from nats.js.kv import KeyValue
from pydantic import ValidationError

from gate_service.config import GateSettings
from libs.messaging.key_directory import KeyDirectoryWatcher, key_record
from libs.rpc import access_table
from libs.rpc.access import MethodRule, find_service, has_access_option, method_rule
from libs.rpc.access_table import SERVICES
from libs.rpc.auth import SERVICE, Authenticator
from libs.rpc.client import health_check, open_channel
from libs.rpc.keys import KeyTable
from libs.rpc.principal import current_principal
from libs.rpc.server import GrpcServer, ServicerBinding
from libs.seedwork.access import Principal, Role
from libs.seedwork.api_keys import issue_key
from libs.testing.services import install_key
from libs.testing.waiting import eventually
from tests.libs.rpc.test_grpc_server import FAILING, add_failing_service, failing
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import ops_events_pb2
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.ops.v1 import ops_pb2

TOKEN = "s" * 40
# The services a process of WhatLead serves (their packages' bootstraps); the table must cover each.
SERVED = (
    "whatlead.gate.v1.GateService",
    "whatlead.executor.v1.ExecutorService",
    "whatlead.reputation.v1.ReputationService",
    "whatlead.ops.v1.OpsService",
)
ORG = "org-a"


def metadata(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


# --- The authenticator ---------------------------------------------------------------------------------


def test_a_key_of_the_table_authenticates_as_its_organization_role_and_id():
    keys = KeyTable()
    secret = install_key(keys, ORG, Role.ADMIN)
    principal = Authenticator(keys, TOKEN).authenticate(metadata(secret))
    assert principal is not None and principal.organization_id == ORG and principal.role is Role.ADMIN
    assert principal.api_key_id and principal.actor == f"key:{principal.api_key_id}"


@pytest.mark.parametrize(
    "presented",
    [
        None,
        (),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer "),),
        (("authorization", "bearer " + TOKEN),),
        metadata("wl_short"),
        metadata("not-a-key-nor-the-token-but-long-enough-to-be-one"),
        metadata(TOKEN[:-1] + "t"),
        metadata(issue_key().secret),  # well formed, unknown prefix
    ],
    ids=[
        "none",
        "empty",
        "basic",
        "empty-bearer",
        "lowercase-scheme",
        "malformed",
        "other",
        "near-token",
        "unknown",
    ],
)
def test_anything_but_a_known_key_or_the_token_authenticates_nobody(presented):
    keys = KeyTable()
    install_key(keys, ORG)
    assert Authenticator(keys, TOKEN).authenticate(presented) is None


def test_a_known_prefix_with_another_secret_or_a_revoked_key_authenticates_nobody():
    keys = KeyTable()
    secret = install_key(keys, ORG)
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    revoked = install_key(keys, ORG, revoked=True)
    authenticator = Authenticator(keys, TOKEN)
    assert authenticator.authenticate(metadata(forged)) is None
    assert authenticator.authenticate(metadata(revoked)) is None
    assert authenticator.authenticate(metadata(secret)) is not None


def test_the_service_credential_authenticates_the_service_and_only_where_one_is_configured():
    assert Authenticator(KeyTable(), TOKEN).authenticate(metadata(TOKEN)) == SERVICE
    assert Authenticator(KeyTable(), None).authenticate(metadata(TOKEN)) is None
    assert Authenticator(KeyTable(), None).authenticate(metadata("")) is None


def test_a_service_credential_shorter_than_32_characters_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("WHATLEAD_SERVICE_TOKEN", "x" * 31)
    with pytest.raises(ValidationError, match="at least 32 characters"):
        GateSettings()
    monkeypatch.setenv("WHATLEAD_SERVICE_TOKEN", "x" * 32)
    assert GateSettings().service_credential() == "x" * 32
    monkeypatch.delenv("WHATLEAD_SERVICE_TOKEN")
    assert GateSettings().service_credential() is None


def test_a_rotation_accepts_the_token_also_accepted_and_presents_only_the_current_one(monkeypatch):
    """The three restarts of a rotation (docs/operations.md): every process accepts the old and the new
    token while either may still be presented, so no call between old and new pods is refused."""
    old, new = "o" * 40, "n" * 40
    monkeypatch.setenv("WHATLEAD_SERVICE_TOKEN", old)
    monkeypatch.setenv("WHATLEAD_SERVICE_TOKEN_ALSO_ACCEPTED", new)
    first = GateSettings()  # 1: the new token accepted everywhere, the old one still presented
    monkeypatch.setenv("WHATLEAD_SERVICE_TOKEN", new)
    monkeypatch.setenv("WHATLEAD_SERVICE_TOKEN_ALSO_ACCEPTED", old)
    second = GateSettings()  # 2: the new one presented, the old one still accepted
    monkeypatch.delenv("WHATLEAD_SERVICE_TOKEN_ALSO_ACCEPTED")
    third = GateSettings()  # 3: the old one forgotten

    assert [first.service_credential(), second.service_credential(), third.service_credential()] == [
        old,
        new,
        new,
    ]
    for settings in (first, second):
        authenticator = Authenticator(KeyTable(), settings.accepted_service_credentials())
        assert authenticator.authenticate(metadata(old)) == SERVICE
        assert authenticator.authenticate(metadata(new)) == SERVICE
        assert authenticator.authenticate(metadata("x" * 40)) is None
    assert Authenticator(KeyTable(), third.accepted_service_credentials()).authenticate(metadata(old)) is None


def test_a_token_also_accepted_shorter_than_32_characters_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("WHATLEAD_SERVICE_TOKEN_ALSO_ACCEPTED", "x" * 31)
    with pytest.raises(ValidationError, match="at least 32 characters"):
        GateSettings()


def test_a_directory_entry_becomes_a_record_with_the_role_by_name_and_revocation():
    issued = issue_key()
    created = ops_events_pb2.ApiKeyCreated(
        api_key=ops_pb2.ApiKey(
            id="key-1", organization_id=ORG, role=ops_pb2.MEMBER_ROLE_OWNER, prefix=issued.prefix
        ),
        secret_sha256=issued.sha256,
    )
    record = key_record(created.SerializeToString())
    assert record is not None and record.principal == Principal(ORG, Role.OWNER, "key-1")
    assert not record.revoked
    created.api_key.revoked_at.CopyFrom(Timestamp(seconds=1))
    created.api_key.role = ops_pb2.MEMBER_ROLE_MEMBER
    record = key_record(created.SerializeToString())
    assert record is not None and record.revoked and record.principal.role is Role.MEMBER
    created.api_key.role = ops_pb2.MEMBER_ROLE_UNSPECIFIED
    assert key_record(created.SerializeToString()) is None


# --- The rules -------------------------------------------------------------------------------------------


def test_every_rpc_of_every_service_says_who_may_call_it():
    assert {service.full_name for service in SERVICES} >= set(SERVED)
    for service in SERVICES:
        assert [m.name for m in service.methods if not has_access_option(m)] == []


def test_the_documented_table_is_the_one_the_descriptors_give():
    document = (Path(__file__).resolve().parents[3] / "docs" / "security.md").read_text()
    assert access_table.markdown() in document


def test_roles_are_ordered_and_the_service_admitted_only_where_the_rule_says():
    admin_or_service = MethodRule(Role.ADMIN, service=True)
    assert not admin_or_service.admits(Principal(ORG, Role.MEMBER))
    assert admin_or_service.admits(Principal(ORG, Role.ADMIN))
    assert admin_or_service.admits(Principal(ORG, Role.OWNER))
    assert admin_or_service.admits(SERVICE)
    service_only = MethodRule(None, service=True)
    assert service_only.admits(SERVICE) and not service_only.admits(Principal(ORG, Role.OWNER))
    members = MethodRule(Role.MEMBER, service=False)
    assert members.admits(Principal(ORG, Role.MEMBER)) and not members.admits(SERVICE)


def test_the_rules_come_from_the_descriptors():
    gate = find_service("whatlead.gate.v1.GateService")
    assert gate is not None
    assert method_rule(gate.methods_by_name["SubmitIntent"]) == MethodRule(Role.MEMBER, service=True)
    assert method_rule(gate.methods_by_name["GetIntent"]) == MethodRule(Role.MEMBER, service=False)
    ops = find_service("whatlead.ops.v1.OpsService")
    assert ops is not None
    assert method_rule(ops.methods_by_name["CreateOrganization"]) == MethodRule(None, True, scoped=False)


# --- Over a server ---------------------------------------------------------------------------------------


class RecordingGate(gate_pb2_grpc.GateServiceServicer):
    """Answers SubmitIntent and GetIntent with nothing; keeps each request and the caller it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Principal]] = []

    async def SubmitIntent(self, request, context):
        self.seen.append((request.organization_id, current_principal()))
        return gate_pb2.SubmitIntentResponse()

    async def GetIntent(self, request, context):
        self.seen.append((request.organization_id, current_principal()))
        return gate_pb2.GetIntentResponse()

    async def CreateIntent(self, request, context):
        raise NotImplementedError

    async def DecideIntent(self, request, context):
        raise NotImplementedError

    async def ListIntents(self, request, context):
        raise NotImplementedError


@pytest.fixture
async def served():
    servicer = RecordingGate()
    keys = KeyTable()
    bindings: list[ServicerBinding[Any]] = [
        ServicerBinding(
            servicer, gate_pb2_grpc.add_GateServiceServicer_to_server, "whatlead.gate.v1.GateService"
        ),
        ServicerBinding(object(), add_failing_service, FAILING),  # no descriptor, so no access option
    ]
    server = GrpcServer(bindings, host="127.0.0.1", port=0, authenticator=Authenticator(keys, TOKEN))
    port = await server.start()
    channels: list[grpc.aio.Channel] = []

    def stub(credential: str | None) -> gate_pb2_grpc.GateServiceAsyncStub:
        channel = open_channel(f"127.0.0.1:{port}", credential=credential)
        channels.append(channel)
        return gate_pb2_grpc.GateServiceStub(channel)

    try:
        yield servicer, keys, stub, channels
    finally:
        for channel in channels:
            await channel.close()
        await server.stop(0)


def submit(organization_id: str) -> gate_pb2.SubmitIntentRequest:
    return gate_pb2.SubmitIntentRequest(
        organization_id=organization_id,
        idempotency_key="k-1",
        target=common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value="5511988887777"),
        type=common_pb2.MESSAGE_TYPE_TEXT,
        purpose=common_pb2.PURPOSE_DISPATCH,
        payload=common_pb2.MessagePayload(text=common_pb2.TextPayload(text="hi")),
    )


async def code_of(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_a_key_acts_on_its_own_organization_which_fills_an_empty_one(served):
    servicer, keys, stub, _ = served
    secret = install_key(keys, ORG, Role.MEMBER)
    assert await code_of(stub(secret).SubmitIntent(submit(""))) is grpc.StatusCode.OK
    assert await code_of(stub(secret).SubmitIntent(submit(ORG))) is grpc.StatusCode.OK
    assert [org for org, _ in servicer.seen] == [ORG, ORG]
    assert servicer.seen[0][1].organization_id == ORG and servicer.seen[0][1].role is Role.MEMBER


async def test_a_key_naming_another_organization_is_permission_denied_before_any_handler(served):
    servicer, keys, stub, _ = served
    secret = install_key(keys, ORG, Role.OWNER)
    assert await code_of(stub(secret).SubmitIntent(submit("org-b"))) is grpc.StatusCode.PERMISSION_DENIED
    assert servicer.seen == []


async def test_no_key_a_bad_key_or_a_revoked_one_is_unauthenticated_and_says_nothing_more(served):
    servicer, keys, stub, _ = served
    revoked = install_key(keys, ORG, revoked=True)
    for credential in (None, "wl_nope", issue_key().secret, revoked, "x" * 40):
        try:
            await stub(credential).SubmitIntent(submit(ORG))
        except grpc.aio.AioRpcError as error:
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            assert "Bearer" in (error.details() or "") and (credential or "-") not in (error.details() or "")
        else:
            raise AssertionError(f"{credential!r} was let in")
    assert servicer.seen == []


async def test_the_service_names_any_organization_where_the_rule_admits_it(served):
    servicer, _, stub, _ = served
    assert await code_of(stub(TOKEN).SubmitIntent(submit("org-b"))) is grpc.StatusCode.OK
    assert servicer.seen == [("org-b", SERVICE)]
    request = gate_pb2.GetIntentRequest(organization_id="org-b", intent_id="0" * 36)
    assert await code_of(stub(TOKEN).GetIntent(request)) is grpc.StatusCode.PERMISSION_DENIED


async def test_validation_runs_after_authorization(served):
    _, keys, stub, _ = served
    secret = install_key(keys, ORG)
    bad = submit(ORG)
    bad.payload.text.text = "hello\x00world"
    assert await code_of(stub(None).SubmitIntent(bad)) is grpc.StatusCode.UNAUTHENTICATED
    assert await code_of(stub(secret).SubmitIntent(bad)) is grpc.StatusCode.INVALID_ARGUMENT
    # The service names its organization: none is invalid, not "everyone's".
    assert await code_of(stub(TOKEN).SubmitIntent(submit(""))) is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_method_without_an_access_option_refuses_everyone_and_health_stays_open(served):
    _, keys, stub, channels = served
    stub(TOKEN)
    stub(install_key(keys, ORG))
    stub(None)
    for channel in channels:
        assert await code_of(failing(channel, "Bug")(b"", timeout=5)) in (
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.UNAUTHENTICATED,
        )
    reply = await health_check(channels[-1])(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# --- The directory's load --------------------------------------------------------------------------------


class UnreachableJetStream:
    """A JetStream whose every request waits forever, as one behind a partition does."""

    async def key_value(self, bucket: str) -> object:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class QuietClient:
    stats = {"reconnects": 0}


async def test_a_directory_that_cannot_be_read_fails_the_start_saying_so():
    watcher = KeyDirectoryWatcher(QuietClient(), UnreachableJetStream(), "root", KeyTable())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"API key directory \(ROOT_API_KEYS\) did not load within 0.1 s"):
        await watcher.load(timeout=0.1)


class FakeWatch:
    """nats-py's KeyWatcher over a list of entries: the current ones, the end marker, then live ones."""

    def __init__(self, entries: list[KeyValue.Entry]) -> None:
        self.queue: asyncio.Queue[KeyValue.Entry | None] = asyncio.Queue()
        for entry in entries:
            self.queue.put_nowait(entry)
        self.queue.put_nowait(None)
        self.stopped = False

    async def updates(self, timeout: float | None = 5.0) -> KeyValue.Entry | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            raise nats.errors.TimeoutError from None

    async def stop(self) -> None:
        self.stopped = True


class FakeBucket:
    """The directory as a dict of entries; each watch starts from its current state."""

    def __init__(self) -> None:
        self.entries: dict[str, KeyValue.Entry] = {}
        self.watches: list[FakeWatch] = []

    def put(self, record: ops_events_pb2.ApiKeyCreated) -> None:
        prefix = record.api_key.prefix
        entry = KeyValue.Entry("b", prefix, record.SerializeToString(), None, None, None, None)
        self.entries[prefix] = entry
        if self.watches:
            self.watches[-1].queue.put_nowait(entry)

    async def watchall(self) -> FakeWatch:
        self.watches.append(FakeWatch(list(self.entries.values())))
        return self.watches[-1]


class FakeJetStream:
    def __init__(self, bucket: FakeBucket) -> None:
        self.bucket = bucket

    async def key_value(self, name: str) -> FakeBucket:
        return self.bucket


class FakeClient:
    def __init__(self) -> None:
        self.stats = {"reconnects": 0}


def directory_record(organization: str) -> tuple[str, ops_events_pb2.ApiKeyCreated]:
    issued = issue_key()
    return issued.secret, ops_events_pb2.ApiKeyCreated(
        api_key=ops_pb2.ApiKey(
            id="k", organization_id=organization, role=ops_pb2.MEMBER_ROLE_ADMIN, prefix=issued.prefix
        ),
        secret_sha256=issued.sha256,
    )


async def test_the_watch_loads_the_directory_follows_it_and_reads_it_again_after_a_reconnection():
    bucket, client = FakeBucket(), FakeClient()
    kept, kept_record = directory_record(ORG)
    bucket.put(kept_record)
    watcher = KeyDirectoryWatcher(client, FakeJetStream(bucket), "root", KeyTable())  # type: ignore[arg-type]
    authenticator = Authenticator(watcher.table, None)
    await watcher.load()
    assert authenticator.authenticate(metadata(kept)) == Principal(ORG, Role.ADMIN, "k")

    stop = asyncio.Event()
    running = asyncio.create_task(watcher.run(stop))
    try:
        kept_record.api_key.revoked_at.CopyFrom(Timestamp(seconds=1))
        bucket.put(kept_record)  # revoked, live
        await eventually(lambda: _refused(authenticator, kept), timeout=2)

        # Away from NATS: a key created meanwhile reaches this process only through a new watch.
        later, later_record = directory_record("org-b")
        bucket.entries[later_record.api_key.prefix] = KeyValue.Entry(
            "b", later_record.api_key.prefix, later_record.SerializeToString(), None, None, None, None
        )
        client.stats["reconnects"] += 1
        await eventually(lambda: _accepted(authenticator, later), timeout=3)
        assert len(bucket.watches) == 2 and bucket.watches[0].stopped
        assert authenticator.authenticate(metadata(kept)) is None  # still revoked after the re-read
    finally:
        stop.set()
        await asyncio.wait_for(running, 3)


async def _refused(authenticator: Authenticator, secret: str) -> bool:
    return authenticator.authenticate(metadata(secret)) is None


async def _accepted(authenticator: Authenticator, secret: str) -> bool:
    return authenticator.authenticate(metadata(secret)) is not None
