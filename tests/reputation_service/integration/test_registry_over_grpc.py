"""The instance registry as a client sees it: real gRPC, PostgreSQL and JetStream."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from libs.messaging import envelope
from libs.rpc.client import health_check
from libs.rpc.errors import field_violations
from libs.testing.waiting import eventually
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import reputation_events_pb2
from whatlead.reputation.v1 import reputation_pb2

ORG, OTHER_ORG = "org-grpc", "org-intruder"
INSTANCE_EVENTS = (reputation_events_pb2.InstanceRegistered, reputation_events_pb2.InstanceChanged)


def registration(
    ref: str = "sales-1", org: str = ORG, **overrides: Any
) -> reputation_pb2.RegisterInstanceRequest:
    fields: dict[str, Any] = dict(
        organization_id=org,
        display_name="Sales",
        provider=common_pb2.PROVIDER_WAHA,
        provider_instance_ref=ref,
        phone="+55 11 98765-4321",
        purposes=[common_pb2.PURPOSE_DISPATCH],
    )
    fields.update(overrides)
    return reputation_pb2.RegisterInstanceRequest(**fields)


async def rejected(call) -> tuple[grpc.StatusCode, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value.code(), field_violations(raised.value)


async def published(jetstream, subject_root: str, subject: str, instance_id: str) -> list[Any]:
    """The events on `subject` ("reputation.instance.registered") about one instance, once one arrived."""
    subscription = await jetstream.pull_subscribe(
        envelope.full_subject(subject_root, subject),
        stream=envelope.stream_name(subject_root, "reputation"),
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    found: list[Any] = []

    async def arrived() -> bool:
        try:
            for msg in await subscription.fetch(100, timeout=0.5):
                event = envelope.decode(msg.headers[envelope.TYPE_HEADER], msg.data)
                if isinstance(event, INSTANCE_EVENTS) and event.instance.id == instance_id:
                    found.append(event)
        except TimeoutError:
            pass
        return bool(found)

    await eventually(arrived, timeout=10)
    await subscription.unsubscribe()
    return found


async def test_registering_publishes_a_typed_instance_registered_event(stub, jetstream, subject_root):
    instance = (await stub.RegisterInstance(registration(ref="evented"))).instance

    [event] = await published(jetstream, subject_root, "reputation.instance.registered", instance.id)

    assert isinstance(event, reputation_events_pb2.InstanceRegistered)
    assert event.DESCRIPTOR.full_name == "whatlead.events.v1.InstanceRegistered"
    assert event.meta.organization_id == ORG and event.meta.aggregate_id == instance.id
    assert event.instance.phone == "5511987654321" and event.instance.version == 1


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"organization_id": ""}, {"organization_id"}),
        ({"provider": common_pb2.PROVIDER_UNSPECIFIED}, {"provider"}),
        ({"provider": 99}, {"provider"}),
        ({"phone": "abc"}, {"phone"}),
        ({"provider_instance_ref": ""}, {"provider_instance_ref"}),
        ({"purposes": []}, {"purposes"}),
        ({"purposes": [42]}, {"purposes[0]"}),
        ({"phone": "1", "provider_instance_ref": "a b"}, {"phone", "provider_instance_ref"}),
        ({"provider_version": "v2026.4.3"}, {"provider_version"}),
        ({"provider_version": "1" * 33}, {"provider_version"}),
        ({"provider_engine": 99}, {"provider_engine"}),
        (
            {"provider": common_pb2.PROVIDER_EVOLUTION, "provider_engine": common_pb2.PROVIDER_ENGINE_GOWS},
            {"provider_engine"},
        ),
    ],
)
async def test_malformed_registrations_get_field_violations_and_create_nothing(stub, overrides, fields):
    request = registration(ref="malformed", **overrides)
    code, violations = await rejected(stub.RegisterInstance(request))

    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations) == fields
    listed = await stub.ListInstances(reputation_pb2.ListInstancesRequest(organization_id=ORG, page_size=500))
    assert all(i.provider_instance_ref != "malformed" for i in listed.instances)


async def test_registering_the_same_provider_ref_twice_concurrently_keeps_one(stub):
    outcomes = await asyncio.gather(
        *(stub.RegisterInstance(registration(ref="raced")) for _ in range(8)), return_exceptions=True
    )

    created = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(created) == 1
    assert {o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)} == {
        grpc.StatusCode.ALREADY_EXISTS
    }


async def test_update_get_and_list_reject_malformed_input(stub):
    instance = (await stub.RegisterInstance(registration(ref="to-update"))).instance
    mask = field_mask_pb2.FieldMask

    cases = [
        (
            stub.UpdateInstance(
                reputation_pb2.UpdateInstanceRequest(organization_id=ORG, instance_id=instance.id)
            ),
            {"update_mask"},
        ),
        (
            stub.UpdateInstance(
                reputation_pb2.UpdateInstanceRequest(
                    organization_id=ORG, instance_id=instance.id, update_mask=mask(paths=["id"])
                )
            ),
            {"update_mask"},
        ),
        (
            stub.UpdateInstance(
                reputation_pb2.UpdateInstanceRequest(
                    organization_id=ORG,
                    instance_id=instance.id,
                    instance=reputation_pb2.Instance(phone="12"),
                    update_mask=mask(paths=["phone"]),
                )
            ),
            {"phone"},
        ),
        (
            stub.UpdateInstance(
                reputation_pb2.UpdateInstanceRequest(
                    organization_id=ORG, instance_id=instance.id, update_mask=mask(paths=["connection_state"])
                )
            ),
            {"instance.connection_state"},
        ),
        (
            stub.GetInstance(reputation_pb2.GetInstanceRequest(organization_id=ORG, instance_id="not-an-id")),
            {"instance_id"},
        ),
        (
            stub.GetInstance(reputation_pb2.GetInstanceRequest(organization_id="", instance_id=instance.id)),
            {"organization_id"},
        ),
        (
            stub.ListInstances(reputation_pb2.ListInstancesRequest(organization_id=ORG, page_size=-5)),
            {"page_size"},
        ),
        (
            stub.ListInstances(reputation_pb2.ListInstancesRequest(organization_id=ORG, page_token="%%%")),
            {"page_token"},
        ),
        (stub.ListInstances(reputation_pb2.ListInstancesRequest(organization_id="")), {"organization_id"}),
    ]
    for call, fields in cases:
        code, violations = await rejected(call)
        assert (code, set(violations)) == (grpc.StatusCode.INVALID_ARGUMENT, fields)

    unchanged = (
        await stub.GetInstance(
            reputation_pb2.GetInstanceRequest(organization_id=ORG, instance_id=instance.id)
        )
    ).instance
    assert unchanged.version == 1 and unchanged.phone == "5511987654321"


async def test_no_rpc_reveals_or_changes_another_organizations_instance(stub):
    mine = (await stub.RegisterInstance(registration(ref="private", org=ORG))).instance
    await stub.RegisterInstance(registration(ref="theirs", org=OTHER_ORG))

    code, _ = await rejected(
        stub.GetInstance(reputation_pb2.GetInstanceRequest(organization_id=OTHER_ORG, instance_id=mine.id))
    )
    assert code is grpc.StatusCode.NOT_FOUND
    code, _ = await rejected(
        stub.UpdateInstance(
            reputation_pb2.UpdateInstanceRequest(
                organization_id=OTHER_ORG,
                instance_id=mine.id,
                instance=reputation_pb2.Instance(display_name="pwned"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            )
        )
    )
    assert code is grpc.StatusCode.NOT_FOUND
    listed = await stub.ListInstances(reputation_pb2.ListInstancesRequest(organization_id=OTHER_ORG))
    assert [i.provider_instance_ref for i in listed.instances] == ["theirs"]
    still = await stub.GetInstance(
        reputation_pb2.GetInstanceRequest(organization_id=ORG, instance_id=mine.id)
    )
    assert still.instance.display_name == "Sales"


async def test_update_changes_the_masked_fields_and_bumps_the_version(stub):
    instance = (await stub.RegisterInstance(registration(ref="masked"))).instance

    updated = (
        await stub.UpdateInstance(
            reputation_pb2.UpdateInstanceRequest(
                organization_id=ORG,
                instance_id=instance.id,
                instance=reputation_pb2.Instance(
                    connection_state=common_pb2.CONNECTION_STATE_CONNECTED, display_name="x"
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["connection_state"]),
            )
        )
    ).instance

    assert updated.connection_state == common_pb2.CONNECTION_STATE_CONNECTED
    assert updated.display_name == "Sales"  # not in the mask: untouched
    assert updated.version == 2


async def test_the_providers_version_and_engine_are_kept_and_announced(stub, jetstream, subject_root):
    registered = (
        await stub.RegisterInstance(
            registration(
                ref="versioned", provider_version="2026.4.3", provider_engine=common_pb2.PROVIDER_ENGINE_GOWS
            )
        )
    ).instance

    got = await stub.GetInstance(
        reputation_pb2.GetInstanceRequest(organization_id=ORG, instance_id=registered.id)
    )
    listed = await stub.ListInstances(reputation_pb2.ListInstancesRequest(organization_id=ORG, page_size=500))
    [event] = await published(jetstream, subject_root, "reputation.instance.registered", registered.id)
    for instance in (registered, got.instance, *(i for i in listed.instances if i.id == registered.id)):
        assert (instance.provider_version, instance.provider_engine) == (
            "2026.4.3",
            common_pb2.PROVIDER_ENGINE_GOWS,
        )
    assert event.instance.provider_version == "2026.4.3"
    assert event.instance.provider_engine == common_pb2.PROVIDER_ENGINE_GOWS


async def test_update_sets_the_version_and_engine_named_in_the_mask(stub, jetstream, subject_root):
    instance = (await stub.RegisterInstance(registration(ref="upgraded"))).instance
    assert (instance.provider_version, instance.provider_engine) == (
        "",
        common_pb2.PROVIDER_ENGINE_UNSPECIFIED,
    )

    updated = (
        await stub.UpdateInstance(
            reputation_pb2.UpdateInstanceRequest(
                organization_id=ORG,
                instance_id=instance.id,
                instance=reputation_pb2.Instance(
                    provider_version="2026.4.3", provider_engine=common_pb2.PROVIDER_ENGINE_NOWEB
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["provider_version", "provider_engine"]),
            )
        )
    ).instance

    got = (
        await stub.GetInstance(
            reputation_pb2.GetInstanceRequest(organization_id=ORG, instance_id=instance.id)
        )
    ).instance
    assert (got.provider_version, got.provider_engine, got.version) == (
        "2026.4.3",
        common_pb2.PROVIDER_ENGINE_NOWEB,
        2,
    )
    assert updated == got
    [event] = await published(jetstream, subject_root, "reputation.instance.changed", instance.id)
    assert list(event.changed_fields) == ["provider_version", "provider_engine"]
    assert event.instance == got


async def test_an_engine_outside_waha_is_refused_and_a_new_provider_starts_unknown(stub):
    evolution = (
        await stub.RegisterInstance(registration(ref="evo", provider=common_pb2.PROVIDER_EVOLUTION))
    ).instance
    waha = (
        await stub.RegisterInstance(
            registration(
                ref="moving", provider_version="2026.4.3", provider_engine=common_pb2.PROVIDER_ENGINE_GOWS
            )
        )
    ).instance

    def update(instance_id: str, paths: list[str], **fields: Any) -> Any:
        return stub.UpdateInstance(
            reputation_pb2.UpdateInstanceRequest(
                organization_id=ORG,
                instance_id=instance_id,
                instance=reputation_pb2.Instance(**fields),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            )
        )

    code, violations = await rejected(
        update(evolution.id, ["provider_engine"], provider_engine=common_pb2.PROVIDER_ENGINE_WEBJS)
    )
    assert (code, violations) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        {"provider_engine": "only WAHA has engines"},
    )
    code, violations = await rejected(update(waha.id, ["provider_version"], provider_version="latest"))
    assert (code, set(violations)) == (grpc.StatusCode.INVALID_ARGUMENT, {"instance.provider_version"})

    moved = (await update(waha.id, ["provider"], provider=common_pb2.PROVIDER_EVOLUTION)).instance

    assert (moved.provider, moved.provider_version, moved.provider_engine) == (
        common_pb2.PROVIDER_EVOLUTION,
        "",
        common_pb2.PROVIDER_ENGINE_UNSPECIFIED,
    )
    untouched = (
        await stub.GetInstance(
            reputation_pb2.GetInstanceRequest(organization_id=ORG, instance_id=evolution.id)
        )
    ).instance
    assert untouched.provider_engine == common_pb2.PROVIDER_ENGINE_UNSPECIFIED and untouched.version == 1


async def test_instance_states_span_every_organization_for_projection_rebuilds(stub):
    a = (await stub.RegisterInstance(registration(ref="state-a", org="org-state-a"))).instance
    b = (await stub.RegisterInstance(registration(ref="state-b", org="org-state-b"))).instance
    seen, token = [], ""
    while True:
        page = await stub.ListInstanceStates(
            reputation_pb2.ListInstanceStatesRequest(page_size=2, page_token=token)
        )
        seen += [state.instance.id for state in page.states]
        token = page.next_page_token
        if not token:
            break
    assert {a.id, b.id} <= set(seen)


async def test_the_service_reports_serving_and_lists_itself_by_reflection(registry):
    reply = await health_check(registry.channel)(
        health_pb2.HealthCheckRequest(service="whatlead.reputation.v1.ReputationService")
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_new_numbers_reputation_is_read_in_its_organization_only_and_listed_by_health_and_phase(stub):
    instance = (await stub.RegisterInstance(registration(ref="reputation-1"))).instance

    got = await stub.GetReputation(
        reputation_pb2.GetReputationRequest(organization_id=ORG, instance_id=instance.id)
    )
    assert got.reputation.phase == reputation_pb2.WARMUP_PHASE_NEWBORN
    assert (got.reputation.health, got.reputation.score, got.reputation.version) == (
        reputation_pb2.HEALTH_STATUS_HEALTHY,
        70,
        1,
    )
    assert not got.HasField("explanation")  # nothing evaluated yet: nothing to explain
    with pytest.raises(grpc.aio.AioRpcError) as elsewhere:
        await stub.GetReputation(
            reputation_pb2.GetReputationRequest(organization_id=OTHER_ORG, instance_id=instance.id)
        )
    assert elsewhere.value.code() is grpc.StatusCode.NOT_FOUND

    async def listed(request: reputation_pb2.ListReputationsRequest) -> set[str]:
        request.organization_id, request.page_size = ORG, 500
        page = await stub.ListReputations(request)
        return {r.instance_id for r in page.reputations}

    newborn = reputation_pb2.ListReputationsRequest(phase=reputation_pb2.WARMUP_PHASE_NEWBORN)
    stable = reputation_pb2.ListReputationsRequest(phase=reputation_pb2.WARMUP_PHASE_STABLE)
    unhealthy = reputation_pb2.ListReputationsRequest(health=reputation_pb2.HEALTH_STATUS_UNHEALTHY)
    assert instance.id in await listed(newborn)
    assert instance.id not in await listed(stable)
    assert instance.id not in await listed(unhealthy)

    states = await stub.ListInstanceStates(reputation_pb2.ListInstanceStatesRequest(organization_id=ORG))
    [state] = [s for s in states.states if s.instance.id == instance.id]
    assert state.reputation.phase == reputation_pb2.WARMUP_PHASE_NEWBORN and state.reputation.version == 1
