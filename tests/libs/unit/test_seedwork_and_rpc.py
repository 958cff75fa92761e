from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from libs.messaging import envelope
from libs.rpc.convert import enum_from_proto, enum_to_proto
from libs.rpc.errors import status_for
from libs.seedwork.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from libs.seedwork.ids import is_valid_id, new_id
from libs.seedwork.organizations import require_organization
from libs.seedwork.pagination import MAX_PAGE_SIZE, Page, page_request
from libs.seedwork.phone import is_group_jid, normalize_phone
from libs.seedwork.shared_kernel import Provider
from whatlead.common.v1 import common_pb2
from whatlead.events.v1 import reputation_events_pb2


def test_ids_are_unique_and_sort_in_creation_order():
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(is_valid_id(i) for i in ids[:10]) and not is_valid_id("nope")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+55 (11) 98765-4321", "5511987654321"),
        ("14155550123", "14155550123"),
        ("0551198765", None),
        ("+1 555", None),
        ("55119876543210000", None),
        ("55 11 9876a4321", None),
        ("", None),
    ],
)
def test_phone_numbers_are_e164_digits_or_rejected(raw, expected):
    assert normalize_phone(raw) == expected


def test_group_jids_are_recognised():
    assert is_group_jid("120363025246125486@g.us")
    assert not is_group_jid("5511987654321@c.us")


def test_invalid_argument_becomes_status_with_every_field_violation():
    status = status_for(
        InvalidArgument([FieldViolation("phone", "bad"), FieldViolation("provider", "unknown")])
    )

    assert status.code is grpc.StatusCode.INVALID_ARGUMENT
    [bad_request] = _details(status)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("phone", "bad"),
        ("provider", "unknown"),
    ]


def _details(status: grpc.Status) -> list[error_details_pb2.BadRequest]:
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    assert isinstance(raw, bytes)  # a -bin key carries bytes
    proto = status_pb2.Status.FromString(raw)
    out = []
    for any_detail in proto.details:
        bad = error_details_pb2.BadRequest()
        if any_detail.Unpack(bad):  # beside the ErrorInfo every error carries
            out.append(bad)
    return out


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
        (FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (PermissionDenied("x"), grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_domain_errors_map_to_their_status_codes(error, code):
    assert status_for(error).code is code


def test_enums_cross_the_wire_by_name_and_unknown_numbers_become_none():
    assert enum_to_proto(common_pb2.Provider, Provider.WUZAPI) == common_pb2.PROVIDER_WUZAPI
    assert enum_from_proto(common_pb2.Provider, common_pb2.PROVIDER_WUZAPI, Provider) is Provider.WUZAPI
    assert enum_from_proto(common_pb2.Provider, common_pb2.PROVIDER_UNSPECIFIED, Provider) is None
    assert enum_from_proto(common_pb2.Provider, 999, Provider) is None


def test_an_event_travels_with_its_subject_type_and_id():
    event = reputation_events_pb2.InstanceRegistered(
        meta=common_pb2.EventMeta(event_id="e-1", organization_id="o")
    )

    encoded = envelope.encode(event)

    assert encoded.subject_suffix == "reputation.instance.registered"
    assert envelope.decode(encoded.type_name, encoded.payload) == event
    with pytest.raises(ValueError, match="event_id"):
        envelope.encode(reputation_events_pb2.InstanceRegistered())
    with pytest.raises(KeyError):
        envelope.decode("whatlead.events.v1.NoSuchEvent", b"")


def test_a_full_page_leads_to_the_next_and_a_short_page_ends_the_listing():
    ids = [new_id() for _ in range(5)]
    first = page_request(2, "")
    page = Page.of(ids[:2], first, id_of=str)
    assert page.items == ids[:2] and page.next_page_token
    second = page_request(2, page.next_page_token)
    assert second.after_id == ids[1]
    assert Page.of(ids[4:], second, id_of=str).next_page_token == ""


@pytest.mark.parametrize(("size", "token"), [(-1, ""), (MAX_PAGE_SIZE + 1, ""), (10, "not-a-token")])
def test_a_page_request_outside_the_rules_names_its_field(size, token):
    with pytest.raises(InvalidArgument) as raised:
        page_request(size, token)
    assert [v.field for v in raised.value.violations] == ["page_size" if size != 10 else "page_token"]


@pytest.mark.parametrize("organization_id", ["", "   "])
def test_a_call_without_organization_is_refused_naming_the_field(organization_id: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        require_organization(organization_id)
    assert [v.field for v in raised.value.violations] == ["organization_id"]


def test_a_call_naming_an_organization_passes() -> None:
    require_organization("org-acme")
