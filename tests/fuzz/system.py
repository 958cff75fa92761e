"""The services under fuzz, running together as in production: Reputation, Gate and Executor in one event
loop of their own (a thread, so hypothesis drives them from plain synchronous tests), on real PostgreSQL,
Redis and NATS, the Executor sending through the provider simulator, with a little real state seeded
through their own RPCs (instances, intents in every state, sent and failed jobs) so that fuzzed ids and
tokens reach the use cases and the stores, not only the first check."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
import nats
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

from executor_service.bootstrap import build as build_executor
from gate_service.bootstrap import build as build_gate
from gate_service.config import GateSettings
from libs.messaging.streams import delete_streams, ensure_streams
from libs.provider_simulator import run_simulator
from libs.rpc.convert import to_timestamp
from libs.testing.services import RunningService, new_service_token, running_service
from libs.testing.waiting import eventually
from reputation_service.bootstrap import build as build_reputation
from reputation_service.config import ReputationSettings
from tests.conftest import NATS_URL, REDIS_URL
from tests.executor_service.integration.harness import settings as executor_settings
from whatlead.common.v1 import common_pb2
from whatlead.executor.v1 import executor_pb2, executor_pb2_grpc
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.reputation.v1 import reputation_pb2, reputation_pb2_grpc

T = TypeVar("T")

ORGANIZATION = "org-fuzz"
FAILING_ORGANIZATION = "org-fuzz-failing"  # its one instance is banned at the provider: its jobs fail
SIMULATOR_KEY = "fuzz-simulator-key"
BANNED_REF = "fuzz-banned"
PHONE = "5511987654321"
# The seeded instances' own number: not PHONE, the intents' target (a number never sends to itself).
INSTANCE_PHONE = "5511987650000"
# No caps worth hitting: the fuzz looks for wrong answers, not for the rate rules.
OPEN_POLICIES = json.dumps(
    {
        phase: {"per_minute": 0, "per_hour": 0, "per_day": 100_000, "min_interval_seconds": 0}
        for phase in ("INTERACTING", "STABLE")
    }
)
CALL_TIMEOUT = 10.0  # a call still unanswered by then is a hung server: DEADLINE_EXCEEDED, a failure


class LoopThread:
    """An event loop running in its own thread; `call` runs a coroutine there and waits for its result."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)

    def __enter__(self) -> LoopThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(_cancel_remaining_tasks(), timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)


async def _cancel_remaining_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class ServedService:
    """One running server: what it registers, and a channel to it."""

    name: str
    running: RunningService
    database_url: str
    max_request_bytes: int  # the size limit its settings give the server

    @property
    def channel(self) -> grpc.aio.Channel:
        return self.running.channel

    @property
    def service_names(self) -> list[str]:
        return [binding.service_name for binding in self.running.parts.bindings]

    def methods(self) -> list[MethodDescriptor]:
        """Every RPC of every service this server registers, read from their descriptors."""
        pool = descriptor_pool.Default()
        return [method for name in self.service_names for method in pool.FindServiceByName(name).methods]


@dataclass
class Seeds:
    """Real values the fuzzed requests mix in: ids that exist, tokens that decode, keys already used."""

    instance_ids: list[str] = field(default_factory=list)
    provider_refs: list[str] = field(default_factory=list)
    intent_ids: list[str] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)
    page_tokens: list[str] = field(default_factory=list)
    idempotency_keys: list[str] = field(default_factory=list)

    def learn(self, response: Message) -> None:
        """Keep the ids and page tokens an answer revealed, so later requests use them: an intent the fuzz
        created is then decided, read and listed by the next RPCs. Each list stays short."""
        for message in _messages_in(response):
            kind = _LEARNED_IDS.get(message.DESCRIPTOR.full_name)
            found: Any = message  # one of the types above, each with an `id`
            if kind is not None and found.id:
                _keep(getattr(self, kind), found.id)
            token = getattr(message, "next_page_token", "")
            if token:
                _keep(self.page_tokens, token)


_LEARNED_IDS = {
    "whatlead.gate.v1.MessageIntent": "intent_ids",
    "whatlead.executor.v1.ExecutionJob": "job_ids",
    "whatlead.reputation.v1.Instance": "instance_ids",
}
KEPT_PER_KIND = 200


def _keep(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)
        del values[:-KEPT_PER_KIND]


def _messages_in(message: Message) -> list[Message]:
    found = [message]
    for field_descriptor, value in message.ListFields():
        if field_descriptor.message_type is None:
            continue
        items = value if field_descriptor.is_repeated else [value]
        for item in items:
            if isinstance(item, Message):  # map entries' scalar values are not
                found += _messages_in(item)
    return found


@dataclass
class FuzzedSystem:
    services: dict[str, ServedService]
    seeds: Seeds
    simulator: Any

    async def call(self, service: str, method: MethodDescriptor, body: bytes) -> tuple[grpc.StatusCode, str]:
        """Send `body` as it is (no serializer) to `method`; the status code and details that came back.
        What a successful answer reveals (ids, page tokens) joins the seeds."""
        path = f"/{method.containing_service.full_name}/{method.name}"
        raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self.services[service].channel.unary_unary(
            path, request_serializer=None, response_deserializer=None
        )
        try:
            answer = await raw(body, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or ""
        self.seeds.learn(GetMessageClass(method.output_type).FromString(answer))
        return grpc.StatusCode.OK, ""


@asynccontextmanager
async def fuzzed_system(
    database_urls: Mapping[str, str], subject_root: str, redis_prefix: str
) -> AsyncIterator[FuzzedSystem]:
    async with AsyncExitStack() as stack:
        client = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        stack.push_async_callback(client.close)
        js = client.jetstream()
        await ensure_streams(js, subject_root)
        stack.push_async_callback(delete_streams, js, subject_root)
        simulator = await stack.enter_async_context(run_simulator(api_key=SIMULATOR_KEY))

        async def serve(name: str, build: Callable[..., Awaitable[Any]], settings: Any) -> ServedService:
            running = await stack.enter_async_context(running_service(build, settings))
            return ServedService(name, running, database_urls[name], settings.grpc_max_receive_bytes)

        # One service credential for the three, as a deployment has: the Gate's rebuild calls reputation.
        common: dict[str, Any] = dict(
            nats_url=NATS_URL,
            subject_root=subject_root,
            migrate_on_start=False,
            grpc_port=0,
            service_token=new_service_token(),
        )
        reputation = await serve(
            "reputation",
            build_reputation,
            # The Gate's open policies are INTERACTING's and STABLE's: the numbers start there.
            ReputationSettings(
                database_url=database_urls["reputation"],
                thresholds={"initial_phase": "INTERACTING"},
                **common,
            ),
        )
        gate = await serve(
            "gate",
            build_gate,
            GateSettings.model_validate(
                {
                    "database_url": database_urls["gate"],
                    **common,
                    "redis_url": REDIS_URL,
                    "redis_key_prefix": f"{redis_prefix}fuzz:",
                    "reputation_addr": reputation.running.address,
                    "phase_policies": OPEN_POLICIES,
                    "contact_min_gap_seconds": 0,
                    "contact_hourly_cap": 0,
                    "consumer_durable_prefix": f"gate-{subject_root}",
                    "scheduler_interval_seconds": 0.2,
                }
            ),
        )
        executor = await serve(
            "executor",
            build_executor,
            executor_settings(
                database_urls["executor"],
                subject_root,
                simulator.base_url,
                simulator_api_key=SIMULATOR_KEY,
                migrate_on_start=False,
                grpc_port=0,
                service_token=common["service_token"],
            ),
        )
        system = FuzzedSystem({s.name: s for s in (reputation, gate, executor)}, Seeds(), simulator)
        await _seed(system)
        yield system


# --- seeding ----------------------------------------------------------------------------------------------


async def _seed(system: FuzzedSystem) -> None:
    registry = reputation_pb2_grpc.ReputationServiceStub(system.services["reputation"].channel)
    gate = gate_pb2_grpc.GateServiceStub(system.services["gate"].channel)
    executor = executor_pb2_grpc.ExecutorServiceStub(system.services["executor"].channel)
    seeds = system.seeds

    system.simulator.ban(BANNED_REF)
    for organization, ref in [
        *((ORGANIZATION, f"fuzz-{n}") for n in range(3)),
        (FAILING_ORGANIZATION, BANNED_REF),
    ]:
        response = await registry.RegisterInstance(valid_registration(organization, ref))
        seeds.instance_ids.append(response.instance.id)
        seeds.provider_refs.append(ref)

    # The Gate hears of the instances through the reputation stream: approved once it has.
    for organization in (ORGANIZATION, FAILING_ORGANIZATION):
        await _approved_intent(gate, organization, seeds)
    later = datetime.now(UTC) + timedelta(hours=1)
    queued = await gate.SubmitIntent(valid_submit(ORGANIZATION, "seed-queued", not_before=later))
    pending = await gate.CreateIntent(valid_create(ORGANIZATION, "seed-pending"))
    seeds.intent_ids += [queued.intent.id, pending.intent.id]
    seeds.idempotency_keys += ["seed-queued", "seed-pending"]

    async def sent_and_failed_jobs() -> bool:
        sent = await executor.ListJobs(
            executor_pb2.ListJobsRequest(organization_id=ORGANIZATION, status=executor_pb2.JOB_STATUS_SENT)
        )
        failed = await executor.ListJobs(
            executor_pb2.ListJobsRequest(
                organization_id=FAILING_ORGANIZATION, status=executor_pb2.JOB_STATUS_FAILED
            )
        )
        return bool(sent.jobs) and bool(failed.jobs)

    await eventually(sent_and_failed_jobs, timeout=30)
    for organization in (ORGANIZATION, FAILING_ORGANIZATION):
        jobs = await executor.ListJobs(
            executor_pb2.ListJobsRequest(organization_id=organization, page_size=1)
        )
        seeds.job_ids += [job.id for job in jobs.jobs]
        intents = await gate.ListIntents(
            gate_pb2.ListIntentsRequest(organization_id=organization, page_size=1)
        )
        instances = await registry.ListInstances(
            reputation_pb2.ListInstancesRequest(organization_id=organization, page_size=1)
        )
        seeds.page_tokens += [jobs.next_page_token, intents.next_page_token, instances.next_page_token]
    seeds.page_tokens = [token for token in seeds.page_tokens if token]


async def _approved_intent(gate: gate_pb2_grpc.GateServiceAsyncStub, organization: str, seeds: Seeds) -> None:
    attempt = 0

    async def approved() -> bool:
        nonlocal attempt
        attempt += 1
        key = f"seed-{organization}-{attempt}"
        response = await gate.SubmitIntent(valid_submit(organization, key))
        seeds.intent_ids.append(response.intent.id)
        seeds.idempotency_keys.append(key)
        return response.intent.status == gate_pb2.INTENT_STATUS_APPROVED

    await eventually(approved, timeout=30, every=0.3)


# --- valid requests: the seeds, and the base the fuzz changes one field of ---------------------------------


def valid_registration(organization: str, ref: str) -> reputation_pb2.RegisterInstanceRequest:
    return reputation_pb2.RegisterInstanceRequest(
        organization_id=organization,
        display_name="Fuzz",
        provider=common_pb2.PROVIDER_SIMULATOR,
        provider_instance_ref=ref,
        phone=INSTANCE_PHONE,
        purposes=[common_pb2.PURPOSE_DISPATCH, common_pb2.PURPOSE_SCHEDULE, common_pb2.PURPOSE_WARMUP],
        connection_state=common_pb2.CONNECTION_STATE_CONNECTED,
    )


def _intent_fields(organization: str, key: str, not_before: datetime | None) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        organization_id=organization,
        idempotency_key=key,
        target=valid_target(),
        type=common_pb2.MESSAGE_TYPE_TEXT,
        purpose=common_pb2.PURPOSE_DISPATCH,
        payload=valid_payload(),
    )
    if not_before is not None:
        fields["not_before"] = to_timestamp(not_before)
    return fields


def valid_submit(
    organization: str, key: str, not_before: datetime | None = None
) -> gate_pb2.SubmitIntentRequest:
    return gate_pb2.SubmitIntentRequest(**_intent_fields(organization, key, not_before))


def valid_create(organization: str, key: str) -> gate_pb2.CreateIntentRequest:
    return gate_pb2.CreateIntentRequest(**_intent_fields(organization, key, None))


def valid_target() -> common_pb2.Target:
    return common_pb2.Target(kind=common_pb2.TARGET_KIND_PHONE, value=PHONE)


def valid_payload() -> common_pb2.MessagePayload:
    return common_pb2.MessagePayload(text=common_pb2.TextPayload(text="hello"))


def hints(seeds: Seeds) -> dict[str, st.SearchStrategy[Any]]:
    """Real values by field name, and valid messages by type, for RequestStrategies."""
    organizations = st.sampled_from([ORGANIZATION, FAILING_ORGANIZATION])
    ids = seeds.instance_ids + seeds.intent_ids + seeds.job_ids
    # Keys already used (a replay, or the same key with another body) and new ones.
    keys = st.one_of(
        st.sampled_from(seeds.idempotency_keys), st.integers(0, 10**9).map(lambda n: f"fuzz-{n}")
    )
    refs = st.sampled_from(seeds.provider_refs)
    fresh_refs = st.integers(0, 10**6).map(lambda n: f"fuzz-r{n}")

    def submit(cls: type[Message]) -> st.SearchStrategy[Message]:
        return st.builds(lambda o, k: cls(**_intent_fields(o, k, None)), organizations, keys)

    return {
        "organization_id": organizations,
        "id": st.sampled_from(ids),
        "instance_id": st.sampled_from(seeds.instance_ids),
        "intent_id": st.sampled_from(seeds.intent_ids),
        "job_id": st.sampled_from(seeds.job_ids),
        "page_token": st.sampled_from(seeds.page_tokens or [""]),
        "idempotency_key": keys,
        "provider_instance_ref": st.one_of(refs, fresh_refs),
        "phone": st.sampled_from([PHONE, "+55 11 98765-4321"]),
        "actor": st.just("fuzz-operator"),
        valid_target().DESCRIPTOR.full_name: st.just(valid_target()),
        valid_payload().DESCRIPTOR.full_name: st.just(valid_payload()),
        gate_pb2.SubmitIntentRequest.DESCRIPTOR.full_name: submit(gate_pb2.SubmitIntentRequest),
        gate_pb2.CreateIntentRequest.DESCRIPTOR.full_name: submit(gate_pb2.CreateIntentRequest),
        reputation_pb2.RegisterInstanceRequest.DESCRIPTOR.full_name: st.builds(
            valid_registration, organizations, st.one_of(refs, fresh_refs)
        ),
        reputation_pb2.UpdateInstanceRequest.DESCRIPTOR.full_name: st.builds(
            lambda o, i: reputation_pb2.UpdateInstanceRequest(
                organization_id=o,
                instance_id=i,
                instance=reputation_pb2.Instance(display_name="Renamed"),
                update_mask=FieldMask(paths=["display_name"]),
            ),
            organizations,
            st.sampled_from(seeds.instance_ids),
        ),
        reputation_pb2.SetWarmupSettingsRequest.DESCRIPTOR.full_name: st.builds(
            lambda o, z: reputation_pb2.SetWarmupSettingsRequest(
                organization_id=o,
                settings=reputation_pb2.WarmupSettings(
                    sending_hours_start="08:00",
                    sending_hours_end="20:00",
                    time_zone=z,
                    friendly_numbers=[PHONE],
                ),
            ),
            organizations,
            st.sampled_from(["America/Sao_Paulo", "Asia/Tokyo", "Pacific/Kiritimati"]),
        ),
    }
