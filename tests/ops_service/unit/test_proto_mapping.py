"""What leaves ops on the wire: events name their actor, a key's metadata never carries its hash, roles
keep their names across the two numberings."""

from __future__ import annotations

from datetime import timedelta

from libs.messaging.controls import control_from_proto
from libs.rpc.roles import role_from_proto, role_to_proto
from libs.seedwork.access import Principal, Role
from libs.seedwork.api_keys import issue_key
from libs.seedwork.clock import FakeClock
from libs.seedwork.shared_kernel import ControlScope
from ops_service.domain.api_key import ApiKey
from ops_service.domain.control import ControlReason, ExecutionControl, Scope
from ops_service.infrastructure.proto_mapping import api_key_to_proto, event_to_proto
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2

NOW = FakeClock().now()


def test_roles_keep_their_names_across_the_two_numberings() -> None:
    assert role_to_proto(Role.OWNER) == ops_pb2.MEMBER_ROLE_OWNER
    assert role_to_proto(Role.MEMBER) == ops_pb2.MEMBER_ROLE_MEMBER
    assert [role_from_proto(n) for n in (1, 2, 3, 0, 99)] == [Role.OWNER, Role.ADMIN, Role.MEMBER, None, None]


def test_a_keys_events_carry_its_hash_and_its_metadata_never_does() -> None:
    issued = issue_key()
    key = ApiKey.issue(
        organization_id="org-1",
        name="ci",
        role=Role.ADMIN,
        issued=issued,
        granted_by=Principal.service(),
        now=NOW,
    )
    key.revoke(actor="service", now=NOW)
    created, revoked = (event_to_proto(e) for e in key.pull_events())

    assert isinstance(created, ops_events_pb2.ApiKeyCreated) and created.secret_sha256 == issued.sha256
    assert isinstance(revoked, ops_events_pb2.ApiKeyRevoked)
    assert not created.api_key.HasField("revoked_at") and revoked.api_key.HasField("revoked_at")
    assert created.meta.actor == "service" and created.meta.aggregate_id == key.id
    for message in (api_key_to_proto(key), revoked):
        wire = message.SerializeToString()
        assert issued.sha256 not in wire and issued.secret.encode() not in wire


def test_a_control_change_names_the_credential_and_the_status_before_it() -> None:
    control = ExecutionControl.active(Scope.of("org-1", ControlScope.CAMPAIGN, "spring"), NOW)
    control.pause(
        reason=ControlReason.COMPLIANCE,
        note="",
        paused_until=None,
        actor="alice (service)",
        caused_by="service",
        now=NOW,
    )
    [event] = control.pull_events()
    message = event_to_proto(event)

    assert isinstance(message, ops_events_pb2.ExecutionControlChanged)
    assert message.meta.actor == "service" and message.meta.aggregate_id == "spring"
    assert message.control.actor == "alice (service)" and message.control.version == 1
    assert message.control.scope == ops_pb2.CONTROL_SCOPE_CAMPAIGN
    assert message.control.reason == ops_pb2.CONTROL_REASON_COMPLIANCE
    assert message.previous_status == ops_pb2.CONTROL_STATUS_ACTIVE


def test_the_gate_and_the_executor_read_a_timed_pause_as_ops_means_it() -> None:
    control = ExecutionControl.active(Scope.of("org-1", ControlScope.ORGANIZATION, ""), NOW)
    until = NOW + timedelta(minutes=5)
    control.pause(
        reason=ControlReason.INCIDENT,
        note="",
        paused_until=until,
        actor="service",
        caused_by="service",
        now=NOW,
    )
    [event] = control.pull_events()
    message = event_to_proto(event)
    assert isinstance(message, ops_events_pb2.ExecutionControlChanged)

    projected = control_from_proto(message.control)

    assert projected is not None
    assert projected.key == ("org-1", ControlScope.ORGANIZATION, "org-1") and projected.version == 1
    assert projected.holds(NOW + timedelta(minutes=4)) and not projected.holds(until)
