"""The error model every server answers with (AIP-193, docs/contracts.md "Errors"): a google.rpc.ErrorInfo
on every error, BadRequest on bad fields, RetryInfo where retrying helps, UNIMPLEMENTED for a method not
built; reflection under v1 and v1alpha. Over a real grpc.aio server on loopback."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.exceptions
from google.rpc import status_pb2
from grpc_reflection.v1alpha import reflection_pb2

from libs.rpc.errors import ERROR_DOMAIN, error_info, field_violations, retry_info
from libs.rpc.reflection import V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME
from libs.rpc.server import GrpcServer, ServicerBinding
from libs.seedwork.errors import (
    AlreadyExists,
    InvalidArgument,
    Reason,
    ResourceExhausted,
    Unavailable,
    duration_text,
    with_article,
)
from libs.seedwork.ids import new_id
from libs.stores import Store, StoreKind, StoreOutages
from whatlead.gate.v1 import gate_pb2, gate_pb2_grpc
from whatlead.ops.v1 import ops_pb2, ops_pb2_grpc

ROOT = Path(__file__).resolve().parents[3]
ERRORS = "whatlead.test.Errors"
RAISED = {
    "Reused": AlreadyExists(
        "idempotency key 'k' was already used for a different request (intent i-1)",
        reason=Reason.IDEMPOTENCY_KEY_REUSED,
        metadata={"intent_id": "i-1", "idempotency_key": "k"},
    ),
    "BadFields": InvalidArgument.of("payload.text.text", "must not be empty"),
    "ProviderDown": Unavailable("the provider did not answer", reason=Reason.PROVIDER_UNAVAILABLE),
    "ProviderSaysWait": Unavailable(
        "the provider did not answer", reason=Reason.PROVIDER_UNAVAILABLE, retry_delay=timedelta(seconds=30)
    ),
    "TooSlow": ResourceExhausted("cut off", reason=Reason.WATCHER_TOO_SLOW, metadata={"after_position": "7"}),
}


def add_errors_service(servicer: object, server: grpc.aio.Server) -> None:
    """A service of raw-bytes methods: one per error in RAISED, a store outage, a bug."""

    def raising(error: Exception):
        async def behaviour(request: bytes, context: object) -> bytes:
            raise error

        return grpc.unary_unary_rpc_method_handler(behaviour)

    handlers = {name: raising(error) for name, error in RAISED.items()}
    handlers["Outage"] = raising(redis.exceptions.ConnectionError("refused"))
    handlers["Bug"] = raising(ValueError("a bug"))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ERRORS, handlers),))


def as_generated(servicer_class: type[Any]) -> Any:
    """A generated servicer as it comes: every method declared, none built (each sets UNIMPLEMENTED and
    raises NotImplementedError; its stub marks them abstract, for servicers to override)."""
    return servicer_class()


@pytest.fixture
async def channel():
    outages = StoreOutages("errors-test", probe_interval=60)
    outages.add(Store(StoreKind.REDIS, holds="rate windows", probe=_never_answers))
    bindings: list[ServicerBinding[Any]] = [
        ServicerBinding(object(), add_errors_service, ERRORS),
        # The generated base servicer: every method declared, none built.
        ServicerBinding(
            as_generated(gate_pb2_grpc.GateServiceServicer),
            gate_pb2_grpc.add_GateServiceServicer_to_server,
            "whatlead.gate.v1.GateService",
        ),
        ServicerBinding(
            as_generated(ops_pb2_grpc.OpsServiceServicer),
            ops_pb2_grpc.add_OpsServiceServicer_to_server,
            "whatlead.ops.v1.OpsService",
        ),
    ]
    server = GrpcServer(bindings, host="127.0.0.1", port=0, outages=outages, authenticator=None)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(0)


async def _never_answers() -> None:
    raise redis.exceptions.ConnectionError("refused")


async def failure(channel: grpc.aio.Channel, method: str) -> grpc.aio.AioRpcError:
    call = channel.unary_unary(f"/{ERRORS}/{method}", request_serializer=bytes, response_deserializer=bytes)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call(b"", timeout=5)
    return failed.value


async def test_a_reused_idempotency_key_names_the_original_intent_in_the_error_info(channel):
    error = await failure(channel, "Reused")
    info = error_info(error)
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert info is not None and (info.reason, info.domain) == ("IDEMPOTENCY_KEY_REUSED", ERROR_DOMAIN)
    assert dict(info.metadata) == {"intent_id": "i-1", "idempotency_key": "k"}
    assert retry_info(error) is None  # sending it again cannot succeed


async def test_bad_fields_carry_a_bad_request_and_the_error_info(channel):
    error = await failure(channel, "BadFields")
    info = error_info(error)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {"payload.text.text": "must not be empty"}
    assert info is not None and (info.reason, info.domain) == ("INVALID_ARGUMENT", ERROR_DOMAIN)


@pytest.mark.parametrize(
    ("method", "code", "reason", "delay"),
    [
        ("ProviderDown", grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE", timedelta(seconds=1)),
        ("ProviderSaysWait", grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE", timedelta(seconds=30)),
        ("Outage", grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE", timedelta(seconds=1)),
        ("TooSlow", grpc.StatusCode.RESOURCE_EXHAUSTED, "WATCHER_TOO_SLOW", timedelta(seconds=1)),
    ],
)
async def test_what_retrying_cures_says_how_long_to_wait(channel, method, code, reason, delay):
    error = await failure(channel, method)
    info, retry = error_info(error), retry_info(error)
    assert error.code() is code and info is not None and info.reason == reason
    assert retry is not None and retry.retry_delay.ToTimedelta() == delay


async def test_a_watcher_cut_off_names_where_to_resume_in_the_metadata(channel):
    info = error_info(await failure(channel, "TooSlow"))
    assert info is not None and info.metadata["after_position"] == "7"


async def test_a_bug_is_internal_with_nothing_of_itself_but_its_reason(channel):
    error = await failure(channel, "Bug")
    info = error_info(error)
    assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, "internal error")
    assert info is not None and (info.reason, dict(info.metadata)) == ("INTERNAL", {})


async def test_a_declared_method_not_built_yet_is_unimplemented_not_internal(channel):
    unary = gate_pb2_grpc.GateServiceStub(channel).GetIntent(
        gate_pb2.GetIntentRequest(organization_id="org-1", intent_id=new_id()), timeout=5
    )
    stream = ops_pb2_grpc.OpsServiceStub(channel).WatchIntents(
        ops_pb2.WatchIntentsRequest(organization_id="org-1"), timeout=5
    )
    for call in (unary, stream.read()):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        info = error_info(refused.value)
        assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert info is not None and (info.reason, info.domain) == ("UNIMPLEMENTED", ERROR_DOMAIN)


async def test_reflection_answers_under_v1_and_v1alpha(channel):
    for service in (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME):
        reflect = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        call = reflect(timeout=5)
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        listed = await call.read()
        await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=V1_SERVICE_NAME))
        described = await call.read()
        await call.done_writing()
        names = {s.name for s in listed.list_services_response.service}
        assert {"whatlead.gate.v1.GateService", V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME} <= names, service
        # A client can describe the v1 service it talks to.
        assert described.WhichOneof("message_response") == "file_descriptor_response", service


# --- the reasons, the messages and the shipped protos ------------------------------------------------------


def test_docs_list_every_reason_and_no_other():
    text = (ROOT / "docs" / "contracts.md").read_text()
    section = text[text.index("### Errors") : text.index("## gRPC services")]
    documented = re.findall(r"^\| `([A-Z_]+)` \| `([A-Z_]+)` \|", section, re.MULTILINE)
    assert sorted(reason for reason, _ in documented) == sorted(Reason)
    assert all(code in grpc.StatusCode.__members__ for _, code in documented)


def test_every_reason_reads_as_a_stable_name():
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*[A-Z0-9]", reason) and len(reason) <= 63 for reason in Reason)


@pytest.mark.parametrize("name", ["status.proto", "error_details.proto", "code.proto"])
def test_the_shipped_google_rpc_protos_are_the_ones_the_services_encode_with(name):
    """protos/google/rpc holds the pinned googleapis-common-protos files, for clients in other languages."""
    installed = Path(status_pb2.__file__).parent / name  # the package's, beside the modules it generated
    assert (ROOT / "protos" / "google" / "rpc" / name).read_bytes() == installed.read_bytes()


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(hours=72), "72 hours"),
        (timedelta(hours=24), "24 hours"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(minutes=90), "1 hour and 30 minutes"),
        (timedelta(hours=1, minutes=1, seconds=5), "1 hour, 1 minute and 5 seconds"),
        (timedelta(days=30), "30 days"),
        (timedelta(seconds=45), "45 seconds"),
    ],
)
def test_durations_read_as_english(duration, text):
    assert duration_text(duration) == text


def test_articles_follow_the_word():
    assert [with_article(w) for w in ("AUDIO", "TEXT", "image", "OWNER")] == [
        "an AUDIO",
        "a TEXT",
        "an image",
        "an OWNER",
    ]
