"""Every webhook shape the providers send becomes exactly the canonical events WhatLead expects.

Bodies live in tests/gateway/fixtures/webhooks/ (the shared examples plus shapes checked in each
provider's source: group acks, ERROR acks, time-locks, bans, @lid contacts, wuzapi's form mode, TurboZap's
double receipts). Identifiers in them are made up.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from gateway.domain.events import ProviderEvent, ProviderEventKind, Restriction
from gateway.domain.normalization import MalformedWebhook, ProviderNormalizer
from libs.seedwork.shared_kernel import ConnectionState, Provider

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
INSTANCE = "0b7e9a1c-instance"
FORM = {"content-type": "application/x-www-form-urlencoded"}
K = ProviderEventKind
EVO, WAHA, WUZ, TZ = Provider.EVOLUTION, Provider.WAHA, Provider.WUZAPI, Provider.TURBOZAP
normalizer = ProviderNormalizer()


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def ev(provider: Provider, ref: str, kind: ProviderEventKind, **fields: Any) -> ProviderEvent:
    fields.setdefault("occurred_at", None)
    return ProviderEvent(
        kind=kind, provider=provider, instance_id=INSTANCE, provider_instance_ref=ref, **fields
    )


def banned(
    provider: Provider, ref: str, code: str, restriction: Restriction, reason: str = ""
) -> ProviderEvent:
    return ev(
        provider,
        ref,
        K.INSTANCE_BANNED,
        ban_code=code,
        restriction=restriction,
        connection_reason=reason or code,
        connection_state=ConnectionState.BANNED,
    )


CONTACT_EVO = "5511987654321@s.whatsapp.net"
CONTACT_WAHA = "5511987650000@s.whatsapp.net"
GROUP = "120363041234567890@g.us"

# fixture -> (provider, the events it must give, the provider event types it must report as ignored)
EXPECTED: dict[str, tuple[Provider, list[ProviderEvent], list[str]]] = {
    # --- Evolution: no event id; date_time is local time labelled Z, so only the message's epoch is a time
    "evolution/messages_update_delivery_ack.json": (
        EVO,
        [
            ev(
                EVO,
                "sales-01",
                K.MESSAGE_DELIVERED,
                provider_message_id="3EB0C767D26A1D8A2B71",
                remote_jid=CONTACT_EVO,
                from_me=True,
            )
        ],
        [],
    ),
    "evolution/messages_update_error.json": (
        EVO,
        [
            ev(
                EVO,
                "sales-01",
                K.MESSAGE_FAILED,
                provider_message_id="3EB0AA11BB22CC33DD44",
                remote_jid=CONTACT_EVO,
                from_me=True,
            )
        ],
        [],
    ),
    "evolution/messages_update_played_lid.json": (
        EVO,
        [
            ev(
                EVO,
                "sales-01",
                K.MESSAGE_READ,
                provider_message_id="3EB0AA11BB22CC33DD46",
                remote_jid="184467440737095@lid",
                from_me=True,
            )
        ],
        [],
    ),
    "evolution/messages_update_deleted_edit.json": (EVO, [], ["messages.update:DELETED"]),
    "evolution/messages_update_read_not_from_me.json": (EVO, [], ["messages.update:not_from_me"]),
    "evolution/messages_upsert_reply.json": (
        EVO,
        [
            ev(
                EVO,
                "sales-01",
                K.MESSAGE_RECEIVED,
                provider_message_id="3A5F1C2D9E8B7A6F5E4D",
                remote_jid=CONTACT_EVO,
                occurred_at=utc(2025, 11, 20, 14, 3, 20),
                text="Oi! Pode me mandar o catálogo?",
            )
        ],
        [],
    ),
    "evolution/messages_upsert_quoted_image.json": (
        EVO,
        [
            ev(
                EVO,
                "sales-01",
                K.MESSAGE_REPLIED,
                provider_message_id="3A77E0C1D2E3F4A5B6C7",
                remote_jid="184467440737095@lid",
                occurred_at=utc(2026, 11, 20, 14, 13, 20),
                reply_to_provider_message_id="3EB0C767D26A1D8A2B71",
                text="Este aqui?",
                media_url="https://mmg.whatsapp.net/o1/v/t62.7118-24/f1/m231/example.enc",
            )
        ],
        [],
    ),
    "evolution/messages_upsert_from_me.json": (EVO, [], ["messages.upsert:from_me"]),
    "evolution/connection_update_close.json": (
        EVO,
        [
            ev(
                EVO,
                "sales-01",
                K.CONNECTION_DISCONNECTED,
                connection_reason="401",
                connection_state=ConnectionState.LOGGED_OUT,
            )
        ],
        [],
    ),
    "evolution/connection_update_close_402.json": (
        EVO,
        [banned(EVO, "sales-01", "402", Restriction.TEMPORARY)],
        [],
    ),
    "evolution/connection_update_close_403.json": (
        EVO,
        [banned(EVO, "sales-01", "403", Restriction.TEMPORARY)],
        [],
    ),
    "evolution/connection_update_close_406.json": (
        EVO,
        [banned(EVO, "sales-01", "406", Restriction.PERMANENT)],
        [],
    ),
    "evolution/connection_update_close_428.json": (
        EVO,
        [
            ev(
                EVO,
                "sales-01",
                K.CONNECTION_DISCONNECTED,
                connection_reason="428",
                connection_state=ConnectionState.DISCONNECTED,
            )
        ],
        [],
    ),
    "evolution/connection_update_open.json": (
        EVO,
        [
            ev(
                EVO,
                "sales-01",
                K.CONNECTION_CONNECTED,
                connection_reason="200",
                connection_state=ConnectionState.CONNECTED,
            )
        ],
        [],
    ),
    "evolution/status_instance_closed.json": (EVO, [], ["status.instance"]),
    "evolution/qrcode_updated.json": (
        EVO,
        [ev(EVO, "sales-02", K.QR_UPDATED, connection_state=ConnectionState.QR_REQUIRED)],
        [],
    ),
    # --- WAHA: its event id, ms envelope time; the serialized message id is what sendText answered
    "waha/message_ack_read.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.MESSAGE_READ,
                provider_event_id="evt_01JD4Q7W3X9K2M5N8P1R4T6V8Y",
                provider_message_id="true_5511987650000@c.us_3EB0A1B2C3D4E5F60718",
                remote_jid=CONTACT_WAHA,
                from_me=True,
                occurred_at=utc(2025, 11, 20, 14, 3, 11, 482000),
            )
        ],
        [],
    ),
    "waha/message_ack_group.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.MESSAGE_DELIVERED,
                provider_event_id="evt_01jd4r0a1b2c3d4e5f6g7h8j9k",
                provider_message_id="true_120363041234567890@g.us_3EB0B1C2D3E4F5061728_5511912340000@c.us",
                remote_jid=GROUP,
                from_me=True,
                is_group=True,
                occurred_at=utc(2026, 11, 20, 14, 0, 0),
            )
        ],
        [],
    ),
    "waha/message_ack_error_noweb.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.MESSAGE_FAILED,
                provider_event_id="evt_01jd4r1a1b2c3d4e5f6g7h8j9k",
                provider_message_id="true_5511987650001@c.us_3EB0C1D2E3F405162738",
                remote_jid="5511987650001@s.whatsapp.net",
                from_me=True,
                occurred_at=utc(2026, 11, 20, 14, 1, 40),
            )
        ],
        [],
    ),
    # NOWEB from the `error` block on (sources: fixtures/webhooks/SOURCES.md): the code travels, 463 restricts
    "waha/message_ack_error_463_noweb.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.MESSAGE_FAILED,
                provider_event_id="evt_01jd4r5a1b2c3d4e5f6g7h8j9k",
                provider_message_id="true_5511987650002@c.us_3EB0A9B8C7D6E5F40312",
                remote_jid="5511987650002@s.whatsapp.net",
                from_me=True,
                occurred_at=utc(2026, 11, 20, 14, 3, 20),
                error_code="463",
                restriction=Restriction.REACHOUT_TIMELOCK,
                timelock_until=utc(2026, 11, 21, 14, 3, 20),
            )
        ],
        [],
    ),
    "waha/message_ack_error_479_noweb.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.MESSAGE_FAILED,
                provider_event_id="evt_01jd4r6a1b2c3d4e5f6g7h8j9k",
                provider_message_id="true_5511987650002@c.us_3EB0A9B8C7D6E5F40313",
                remote_jid="5511987650002@s.whatsapp.net",
                from_me=True,
                occurred_at=utc(2026, 11, 20, 14, 3, 30),
                error_code="479",
            )
        ],
        [],
    ),
    "waha/message_ack_error_without_code_noweb.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.MESSAGE_FAILED,
                provider_event_id="evt_01jd4r7a1b2c3d4e5f6g7h8j9k",
                provider_message_id="true_5511987650002@c.us_3EB0A9B8C7D6E5F40314",
                remote_jid="5511987650002@s.whatsapp.net",
                from_me=True,
                occurred_at=utc(2026, 11, 20, 14, 3, 40),
            )
        ],
        [],
    ),
    "waha/message_ack_not_from_me.json": (WAHA, [], ["message.ack:not_from_me"]),
    "waha/message_incoming.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.MESSAGE_RECEIVED,
                provider_event_id="evt_01JD4Q9A1B3C5D7E9F1G3H5J7K",
                provider_message_id="false_5511987650000@c.us_AAF1B2C3D4E5F6071829",
                remote_jid=CONTACT_WAHA,
                occurred_at=utc(2025, 11, 20, 14, 5, 0),
                text="Quero saber o preço",
            )
        ],
        [],
    ),
    "waha/message_reply_lid_media.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.MESSAGE_REPLIED,
                provider_event_id="evt_01jd4r4a1b2c3d4e5f6g7h8j9k",
                provider_message_id="false_98765432101234@lid_AB12CD34EF56AB78CD90",
                remote_jid="98765432101234@lid",
                occurred_at=utc(2026, 11, 20, 14, 6, 40),
                reply_to_provider_message_id="3EB0A1B2C3D4E5F60718",
                text="Recebi, obrigado",
                media_url="http://waha.example.com/api/files/sales-03/AB12CD34EF56AB78CD90.jpeg",
            )
        ],
        [],
    ),
    "waha/message_any_from_me.json": (WAHA, [], ["message.any"]),
    "waha/session_status_failed.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.CONNECTION_ERROR,
                provider_event_id="evt_01JD4QB2C4D6E8F0G2H4J6K8M0",
                occurred_at=utc(2025, 11, 20, 15, 3, 20),
                connection_reason="FAILED",
                connection_state=ConnectionState.DISCONNECTED,
            )
        ],
        [],
    ),
    "waha/session_status_working_timelock.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.CONNECTION_CONNECTED,
                provider_event_id="evt_01jd4r3a1b2c3d4e5f6g7h8j9k",
                occurred_at=utc(2026, 11, 20, 14, 5, 0),
                connection_reason="WORKING",
                connection_state=ConnectionState.CONNECTED,
            ),
            ev(
                WAHA,
                "sales-03",
                K.REACHOUT_TIMELOCKED,
                provider_event_id="evt_01jd4r3a1b2c3d4e5f6g7h8j9k",
                occurred_at=utc(2026, 11, 20, 14, 5, 0),
                connection_reason="DEFAULT",
                connection_state=ConnectionState.CONNECTED,
                timelock_until=utc(2026, 11, 21, 14, 5, 0),
            ),
        ],
        [],
    ),
    "waha/session_status_working_timelock_lifted.json": (
        WAHA,
        [
            ev(
                WAHA,
                "sales-03",
                K.CONNECTION_CONNECTED,
                provider_event_id="evt_01jd4r8a1b2c3d4e5f6g7h8j9k",
                occurred_at=utc(2026, 11, 21, 14, 6, 0),
                connection_reason="WORKING",
                connection_state=ConnectionState.CONNECTED,
            ),
            ev(
                WAHA,
                "sales-03",
                K.REACHOUT_TIMELOCK_LIFTED,
                provider_event_id="evt_01jd4r8a1b2c3d4e5f6g7h8j9k",
                occurred_at=utc(2026, 11, 21, 14, 6, 0),
                connection_reason="DEFAULT",
                connection_state=ConnectionState.CONNECTED,
            ),
        ],
        [],
    ),
    # --- wuzapi: JSON mode with sorted keys, or form mode; no event id
    "wuzapi/read_receipt_delivered.json": (
        WUZ,
        [
            ev(
                WUZ,
                "sales-04",
                K.MESSAGE_DELIVERED,
                provider_message_id="90B2F8B13FAC8A9CF6B06E99C7834DC5",
                remote_jid="5521998887777@s.whatsapp.net",
                from_me=True,
                occurred_at=utc(2026, 11, 20, 17, 5, 1),
            )
        ],
        [],
    ),
    "wuzapi/read_receipt_read_lid.json": (
        WUZ,
        [
            ev(
                WUZ,
                "sales-04",
                K.MESSAGE_READ,
                provider_message_id=message_id,
                remote_jid="184467440737095@lid",
                from_me=True,
                occurred_at=utc(2026, 11, 20, 18, 10, 0, 123456),
            )
            for message_id in ("3EB0D1E2F3A4B5C6D7E8", "3EB0D1E2F3A4B5C6D7E9")
        ],
        [],
    ),
    "wuzapi/read_receipt_read_self.json": (WUZ, [], ["ReadReceipt:ReadSelf"]),
    "wuzapi/message_reply.json": (
        WUZ,
        [
            ev(
                WUZ,
                "sales-04",
                K.MESSAGE_REPLIED,
                provider_message_id="AC1D2E3F4A5B6C7D8EA0",
                remote_jid="5521998887777@s.whatsapp.net",
                occurred_at=utc(2026, 11, 20, 18, 30, 0),
                reply_to_provider_message_id="90B2F8B13FAC8A9CF6B06E99C7834DC5",
                text="Tenho interesse",
            )
        ],
        [],
    ),
    "wuzapi/temporary_ban.json": (
        WUZ,
        [banned(WUZ, "sales-04", "101", Restriction.TEMPORARY, reason="expire_s=86400")],
        [],
    ),
    "wuzapi/logged_out_403.json": (WUZ, [banned(WUZ, "sales-04", "403", Restriction.TEMPORARY)], []),
    "wuzapi/logged_out_406.form": (WUZ, [banned(WUZ, "sales-04", "406", Restriction.PERMANENT)], []),
    "wuzapi/connected.json": (
        WUZ,
        [
            ev(
                WUZ,
                "sales-04",
                K.CONNECTION_CONNECTED,
                connection_reason="Connected",
                connection_state=ConnectionState.CONNECTED,
            )
        ],
        [],
    ),
    # --- TurboZap: RFC 3339 times, no event id, every receipt twice
    "turbozap/message_ack_delivered.json": (
        TZ,
        [
            ev(
                TZ,
                "sales-05",
                K.MESSAGE_DELIVERED,
                provider_message_id="3EB0F1E2D3C4B5A69788",
                remote_jid="5531991112222@s.whatsapp.net",
                from_me=True,
                occurred_at=utc(2026, 11, 20, 17, 2, 3, 412000),
            )
        ],
        [],
    ),
    "turbozap/messages_update_delivered.json": (
        TZ,
        [
            ev(
                TZ,
                "sales-05",
                K.MESSAGE_DELIVERED,
                provider_message_id="3EB0F1E2D3C4B5A69788",
                remote_jid="5531991112222@s.whatsapp.net",
                from_me=True,
                occurred_at=utc(2026, 11, 20, 17, 2, 3, 412000),
            )
        ],
        [],
    ),
    "turbozap/messages_update_edit.json": (TZ, [], ["messages.update:edit"]),
    "turbozap/messages_upsert_reply.json": (
        TZ,
        [
            ev(
                TZ,
                "sales-05",
                K.MESSAGE_REPLIED,
                provider_message_id="ABCD1234EF567890ABCD",
                remote_jid="5531991112222@s.whatsapp.net",
                occurred_at=utc(2026, 11, 20, 17, 5, 0),
                reply_to_provider_message_id="3EB0F1E2D3C4B5A69788",
                text="Pode ser amanhã?",
            )
        ],
        [],
    ),
    "turbozap/connection_update_logged_out.json": (
        TZ,
        [
            ev(
                TZ,
                "sales-05",
                K.CONNECTION_DISCONNECTED,
                occurred_at=utc(2026, 11, 20, 18, 0, 0),
                connection_reason="logged_out",
                connection_state=ConnectionState.LOGGED_OUT,
            )
        ],
        [],
    ),
    "turbozap/presence_update.json": (TZ, [], ["presence.update"]),
}


def normalize_fixture(name: str, provider: Provider | None = None) -> tuple[list[ProviderEvent], list[str]]:
    expected_provider = EXPECTED[name][0]
    headers = FORM if name.endswith(".form") else {"content-type": "application/json"}
    result = normalizer.normalize(
        provider or expected_provider, INSTANCE, headers, (FIXTURES / name).read_bytes()
    )
    return list(result.events), list(result.ignored_types)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_gives_exactly_its_canonical_events(name: str) -> None:
    _, events, ignored_types = EXPECTED[name]
    assert normalize_fixture(name) == (events, ignored_types)


def test_every_fixture_has_an_expectation() -> None:
    on_disk = {
        str(path.relative_to(FIXTURES))
        for path in FIXTURES.rglob("*")
        if path.is_file() and path.suffix != ".md"  # SOURCES.md says where the shapes come from
    }
    assert on_disk == set(EXPECTED)


def test_turbozap_sends_each_receipt_twice_and_both_give_one_dedup_key() -> None:
    (ack,), _ = normalize_fixture("turbozap/message_ack_delivered.json")
    (update,), _ = normalize_fixture("turbozap/messages_update_delivered.json")
    assert ack == update
    assert (
        ack.dedup_key
        == update.dedup_key
        == f"TURBOZAP:{INSTANCE}:MESSAGE_DELIVERED:message:3EB0F1E2D3C4B5A69788"
    )


def test_a_later_receipt_of_the_same_message_is_a_different_fact() -> None:
    delivered = json.loads((FIXTURES / "turbozap/message_ack_delivered.json").read_bytes())
    delivered["data"]["status"] = "read"
    (read,) = normalizer.normalize(TZ, INSTANCE, {}, json.dumps(delivered).encode()).events
    (ack,), _ = normalize_fixture("turbozap/message_ack_delivered.json")
    assert read.kind is K.MESSAGE_READ
    assert read.dedup_key != ack.dedup_key


def test_receipts_are_matched_on_the_message_id_whatever_names_the_contact() -> None:
    """An @lid contact gives the same message id the send answered: the chat is never the key."""
    body = json.loads((FIXTURES / "evolution/messages_update_delivery_ack.json").read_bytes())
    as_phone = normalizer.normalize(EVO, INSTANCE, {}, json.dumps(body).encode()).events[0]
    body["data"]["remoteJid"] = "184467440737095@lid"
    as_lid = normalizer.normalize(EVO, INSTANCE, {}, json.dumps(body).encode()).events[0]
    assert as_lid.remote_jid == "184467440737095@lid"
    assert as_lid.dedup_key == as_phone.dedup_key
    assert as_lid.provider_message_id == as_phone.provider_message_id == "3EB0C767D26A1D8A2B71"


def test_wuzapi_form_mode_and_json_mode_give_the_same_events() -> None:
    envelope = json.loads((FIXTURES / "wuzapi/temporary_ban.json").read_bytes())
    instance_fields = {name: envelope.pop(name) for name in ("instanceName", "userID")}
    form = urlencode({"jsonData": json.dumps(envelope), **instance_fields}).encode()
    assert normalizer.normalize(WUZ, INSTANCE, FORM, form) == normalizer.normalize(
        WUZ, INSTANCE, {}, (FIXTURES / "wuzapi/temporary_ban.json").read_bytes()
    )


def test_evolution_date_time_is_not_taken_for_a_time() -> None:
    """Evolution labels local time with Z: a message's time is its own epoch, whatever date_time says."""
    body = json.loads((FIXTURES / "evolution/messages_upsert_reply.json").read_bytes())
    body["date_time"] = "2026-11-20T11:03:20.101Z"  # a server at UTC-3
    (event,) = normalizer.normalize(EVO, INSTANCE, {}, json.dumps(body).encode()).events
    assert event.occurred_at == datetime.fromtimestamp(body["data"]["messageTimestamp"], tz=UTC)


def test_the_simulator_speaks_waha() -> None:
    events, _ = normalize_fixture("waha/message_ack_read.json", provider=Provider.SIMULATOR)
    (expected,) = EXPECTED["waha/message_ack_read.json"][1]
    assert events == [ProviderEvent(**{**vars(expected), "provider": Provider.SIMULATOR})]


UNKNOWN = {
    EVO: (
        b'{"event": "presence.update", "instance": "sales-01", "data": {"id": "x", "presences": {}}}',
        "presence.update",
    ),
    WAHA: (
        b'{"id": "evt_1", "timestamp": 1, "event": "poll.vote", "session": "s", "payload": {}}',
        "poll.vote",
    ),
    WUZ: (
        b'{"event": {}, "instanceName": "sales-04", "type": "ChatPresence", "userID": "u"}',
        "ChatPresence",
    ),
    TZ: (b'{"event": "call.received", "instance": "sales-05", "data": {}}', "call.received"),
}


@pytest.mark.parametrize("provider", sorted(UNKNOWN))
def test_unknown_event_types_are_ignored_and_reported(provider: Provider) -> None:
    body, label = UNKNOWN[provider]
    result = normalizer.normalize(provider, INSTANCE, {}, body)
    assert list(result.events) == []
    assert list(result.ignored_types) == [label]


def test_an_ignored_type_is_a_bounded_metric_label() -> None:
    body = json.dumps({"event": "x" * 500 + ' {"}\n', "instance": "s", "data": {}}).encode()
    (label,) = normalizer.normalize(EVO, INSTANCE, {}, body).ignored_types
    assert len(label) <= 64
    assert set(label) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:=-")


MALFORMED = [
    b"",
    b"not json",
    b"[1, 2, 3]",
    b'"a string"',
    b"\xff\xfe\x00garbage",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"event": ' + b"9" * 5000 + b"}",
]


@pytest.mark.parametrize("provider", [EVO, WAHA, WUZ, TZ])
@pytest.mark.parametrize("body", MALFORMED, ids=lambda body: repr(body[:12]))
def test_a_body_that_does_not_parse_is_malformed(provider: Provider, body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        normalizer.normalize(provider, INSTANCE, {}, body)


@pytest.mark.parametrize(
    ("provider", "headers", "body"),
    [
        (EVO, {}, b'{"event": "messages.update", "data": {"status": "READ", "fromMe": true}}'),
        (WAHA, {}, b'{"event": "message.ack", "payload": {"id": 5, "ack": 3, "fromMe": true}}'),
        (WUZ, {}, b'{"type": "ReadReceipt", "state": "Read", "event": {"MessageIDs": [1, null]}}'),
        (WUZ, FORM, b"instanceName=sales-04&userID=u"),
        (WUZ, FORM, b"jsonData=%5B%5D"),
        (TZ, {}, b'{"event": "message.ack", "data": {"status": "read"}}'),
    ],
)
def test_a_message_event_without_its_message_id_is_malformed(
    provider: Provider, headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(MalformedWebhook):
        normalizer.normalize(provider, INSTANCE, headers, body)


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        (WAHA, b'{"event": "message", "timestamp": 1e308, "payload": {"id": "m", "timestamp": -1e308}}'),
        (
            EVO,
            b'{"event": "messages.upsert", "data": {"key": {"id": "m"}, '
            b'"messageTimestamp": {"low": 1e300, "high": -5}}}',
        ),
        (
            WUZ,
            b'{"type": "Message", "event": {"Info": {"ID": "m", "Timestamp": "9999-12-31T23:59:59-23:59"}}}',
        ),
        (
            TZ,
            b'{"event": "messages.upsert", "timestamp": "0001-01-01T00:00:00Z", "data": {"message_id": "m"}}',
        ),
    ],
)
def test_times_out_of_range_are_unknown_not_errors(provider: Provider, body: bytes) -> None:
    (event,) = normalizer.normalize(provider, INSTANCE, {}, body).events
    assert event.occurred_at is None


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (402, banned(WUZ, "sales-04", "402", Restriction.TEMPORARY)),
        (403, banned(WUZ, "sales-04", "403", Restriction.TEMPORARY)),
        (406, banned(WUZ, "sales-04", "406", Restriction.PERMANENT)),
        (
            503,
            ev(
                WUZ,
                "sales-04",
                K.CONNECTION_ERROR,
                connection_reason="ConnectFailure:503",
                connection_state=ConnectionState.DISCONNECTED,
            ),
        ),
    ],
)
def test_a_wuzapi_connect_failure_with_a_ban_code_is_a_ban(reason: int, expected: ProviderEvent) -> None:
    body = {"event": {"Message": "", "Raw": None, "Reason": reason}, "instanceName": "sales-04"}
    body |= {"type": "ConnectFailure", "userID": "a1b2c3d4"}
    assert list(normalizer.normalize(WUZ, INSTANCE, {}, json.dumps(body).encode()).events) == [expected]


def test_turbozap_base64_bodies_give_the_same_events() -> None:
    raw = (FIXTURES / "turbozap/message_ack_delivered.json").read_bytes()
    encoded = base64.b64encode(raw)
    headers = {"content-type": "text/plain", "x-content-transfer-encoding": "base64"}
    assert normalizer.normalize(TZ, INSTANCE, headers, encoded) == normalizer.normalize(TZ, INSTANCE, {}, raw)
    with pytest.raises(MalformedWebhook):
        normalizer.normalize(TZ, INSTANCE, headers, raw)  # JSON where base64 was announced


def _waha_error_ack(error: object) -> ProviderEvent:
    body = json.loads((FIXTURES / "waha/message_ack_error_463_noweb.json").read_bytes())
    body["payload"]["error"] = error
    (event,) = normalizer.normalize(WAHA, INSTANCE, {}, json.dumps(body).encode()).events
    return event


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (463, "463"),  # a number where WAHA sends a string
        ("463abc", ""),
        ("-463", ""),
        ("4630000", ""),  # longer than any WhatsApp code
        ("\uff14\uff16\uff13", ""),  # full-width digits
        (True, ""),
        (["463"], ""),
    ],
)
def test_an_error_code_is_a_short_number_or_nothing(code: object, expected: str) -> None:
    event = _waha_error_ack({"code": code, "blocked": True})
    assert event.kind is K.MESSAGE_FAILED
    assert event.error_code == expected
    assert (event.restriction is Restriction.REACHOUT_TIMELOCK) == (expected == "463")


def test_a_463_without_a_readable_end_still_restricts_the_instance() -> None:
    for until in (None, "tomorrow", "2026-11-21T14:03:20"):  # no offset: it would be a guess
        event = _waha_error_ack({"code": "463", "blocked": True, "until": until})
        assert (event.error_code, event.restriction, event.timelock_until) == (
            "463",
            Restriction.REACHOUT_TIMELOCK,
            None,
        )


def test_an_error_block_that_is_not_an_object_is_a_failure_without_code() -> None:
    event = _waha_error_ack("463")
    assert (event.kind, event.error_code, event.restriction) == (K.MESSAGE_FAILED, "", None)


def test_only_an_error_ack_reads_an_error_code() -> None:
    body = json.loads((FIXTURES / "waha/message_ack_error_463_noweb.json").read_bytes())
    body["payload"] |= {"ack": 1, "ackName": "SERVER"}
    (event,) = normalizer.normalize(WAHA, INSTANCE, {}, json.dumps(body).encode()).events
    assert (event.kind, event.error_code, event.restriction) == (K.MESSAGE_SENT, "", None)


def test_evolution_reports_a_failure_without_its_code() -> None:
    """Evolution 2.3.6 leaves Baileys' messageStubParameters out of the webhook, a 463 included."""
    (event,), _ = normalize_fixture("evolution/messages_update_error.json")
    assert (event.kind, event.error_code, event.restriction) == (K.MESSAGE_FAILED, "", None)


@pytest.mark.parametrize("timelock", [None, "inactive", [False]])
def test_a_session_without_a_readable_time_lock_says_nothing_about_one(timelock: object) -> None:
    """WAHA keeps the time-lock null until it has seen one."""
    body = json.loads((FIXTURES / "waha/session_status_working_timelock_lifted.json").read_bytes())
    body["me"]["reachoutTimelock"] = body["payload"]["data"]["reachoutTimelock"] = timelock
    events = normalizer.normalize(WAHA, INSTANCE, {}, json.dumps(body).encode()).events
    assert [event.kind for event in events] == [K.CONNECTION_CONNECTED]


def test_the_time_lock_a_status_carries_is_read_before_the_sessions_me() -> None:
    """WAHA re-issues WORKING with `data.reachoutTimelock` when the time-lock changes."""
    body = json.loads((FIXTURES / "waha/session_status_working_timelock_lifted.json").read_bytes())
    body["payload"]["data"]["reachoutTimelock"]["isActive"] = True
    del body["me"]["reachoutTimelock"]
    events = normalizer.normalize(WAHA, INSTANCE, {}, json.dumps(body).encode()).events
    assert [event.kind for event in events] == [K.CONNECTION_CONNECTED, K.REACHOUT_TIMELOCKED]
    assert events[1].timelock_until == utc(2026, 11, 21, 14, 5, 0)


def test_a_lifted_time_lock_is_reported_only_while_working() -> None:
    body = json.loads((FIXTURES / "waha/session_status_working_timelock_lifted.json").read_bytes())
    body["payload"]["status"] = "STOPPED"
    events = normalizer.normalize(WAHA, INSTANCE, {}, json.dumps(body).encode()).events
    assert [event.kind for event in events] == [K.CONNECTION_DISCONNECTED]
