"""The projected kill-switch every service that obeys it shares: when a control holds, which version wins,
and how ops' messages read as one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from libs.messaging.controls import control_from_event, control_from_proto
from libs.seedwork.controls import ExecutionControl
from libs.seedwork.shared_kernel import ControlScope
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import ops_events_pb2
from whatlead.ops.v1 import ops_pb2

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
ORG = "org-acme"


def control(
    *,
    paused: bool = True,
    until: datetime | None = None,
    version: int = 1,
    scope: ControlScope = ControlScope.CAMPAIGN,
    scope_id: str = "camp-1",
) -> ExecutionControl:
    return ExecutionControl(
        organization_id=ORG,
        scope=scope,
        scope_id=scope_id,
        paused=paused,
        paused_until=until,
        version=version,
        updated_at=T0,
    )


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def test_a_pause_without_an_end_holds_until_resumed():
    assert control().holds(T0)
    assert control().holds(T0 + timedelta(days=365))
    assert not control(paused=False).holds(T0)


def test_a_timed_pause_ends_by_itself_at_its_time():
    timed = control(until=T0 + timedelta(minutes=15))
    assert timed.holds(T0 + timedelta(minutes=15) - timedelta(microseconds=1))
    assert not timed.holds(T0 + timedelta(minutes=15))
    assert not timed.holds(T0 + timedelta(hours=1))


def test_only_a_newer_version_of_the_same_scope_replaces_a_control():
    current = control(version=3)
    assert control(version=4).supersedes(current)
    assert not control(version=3).supersedes(current)  # redelivered
    assert not control(version=2).supersedes(current)  # reordered
    assert current.supersedes(None)


def test_versions_of_different_scopes_do_not_compare():
    with pytest.raises(ValueError, match="compared"):
        control(version=2).supersedes(control(version=1, scope_id="camp-2"))


def test_an_event_reads_as_the_control_it_carries():
    event = ops_events_pb2.ExecutionControlChanged(
        meta=common_pb2.EventMeta(organization_id=ORG, occurred_at=stamp(T0 + timedelta(seconds=1))),
        control=ops_pb2.ExecutionControl(
            organization_id=ORG,
            scope=ops_pb2.CONTROL_SCOPE_INSTANCE,
            scope_id="inst-1",
            status=ops_pb2.CONTROL_STATUS_PAUSED,
            paused_until=stamp(T0 + timedelta(minutes=5)),
            updated_at=stamp(T0),
            version=7,
        ),
    )
    assert control_from_event(event) == ExecutionControl(
        organization_id=ORG,
        scope=ControlScope.INSTANCE,
        scope_id="inst-1",
        paused=True,
        paused_until=T0 + timedelta(minutes=5),
        version=7,
        updated_at=T0,
    )


def test_what_a_control_leaves_empty_comes_from_its_event():
    event = ops_events_pb2.ExecutionControlChanged(
        meta=common_pb2.EventMeta(organization_id=ORG, occurred_at=stamp(T0)),
        control=ops_pb2.ExecutionControl(
            scope=ops_pb2.CONTROL_SCOPE_ORGANIZATION, status=ops_pb2.CONTROL_STATUS_ACTIVE, version=2
        ),
    )
    resumed = control_from_event(event)
    assert resumed is not None
    assert (resumed.organization_id, resumed.scope_id, resumed.updated_at) == (ORG, ORG, T0)
    assert not resumed.paused and resumed.paused_until is None


@pytest.mark.parametrize(
    "message",
    [
        ops_pb2.ExecutionControl(organization_id=ORG, scope_id="inst-1"),  # no scope
        ops_pb2.ExecutionControl(organization_id=ORG, scope=ops_pb2.CONTROL_SCOPE_CAMPAIGN),  # no id
        ops_pb2.ExecutionControl(scope=ops_pb2.CONTROL_SCOPE_ORGANIZATION),  # no organization
    ],
)
def test_a_control_that_names_no_scope_is_unusable(message):
    assert control_from_proto(message) is None
