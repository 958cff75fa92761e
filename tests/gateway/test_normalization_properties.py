"""Whatever a verified body holds, normalizing it answers events, ignored types or MalformedWebhook:
never another exception (which would answer 500 and make the provider retry the same body forever)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.domain.normalization import MalformedWebhook, NormalizedWebhook, ProviderNormalizer
from libs.seedwork.shared_kernel import Provider

normalizer = ProviderNormalizer()
PROPERTY = settings(max_examples=300, database=None, deadline=None, suppress_health_check=list(HealthCheck))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "2026-11-20T14:05:01-03:00", "0001-01-01T00:00:00Z", "x@lid", "1@g.us", "-1"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
# Keys and values each provider reads, so the examples reach past the envelope into every branch.
KEYS = [
    "id",
    "keyId",
    "remoteJid",
    "fromMe",
    "status",
    "key",
    "message",
    "messageTimestamp",
    "conversation",
    "extendedTextMessage",
    "imageMessage",
    "contextInfo",
    "stanzaId",
    "stanzaID",
    "caption",
    "url",
    "URL",
    "state",
    "statusReason",
    "qrcode",
    "timestamp",
    "from",
    "ack",
    "ackName",
    "body",
    "media",
    "replyTo",
    "reachoutTimelock",
    "isActive",
    "timeEnforcementEnds",
    "MessageIDs",
    "Chat",
    "Sender",
    "IsGroup",
    "Timestamp",
    "Info",
    "ID",
    "IsFromMe",
    "Message",
    "Reason",
    "Code",
    "Expire",
    "message_id",
    "to",
    "is_group",
    "quoted_msg_id",
    "content",
    "media_url",
    "low",
    "high",
    "me",
    "s3",
]
EVENTS = {
    Provider.EVOLUTION: ["messages.update", "messages.upsert", "connection.update", "qrcode.updated"],
    Provider.WAHA: ["message.ack", "message.ack.group", "message", "session.status"],
    Provider.WUZAPI: ["ReadReceipt", "Message", "LoggedOut", "TemporaryBan", "ConnectFailure", "Connected"],
    Provider.TURBOZAP: [
        "messages.update",
        "message.ack",
        "messages.upsert",
        "send.message",
        "connection.update",
    ],
}
STATES = [
    "ERROR",
    "SERVER_ACK",
    "DELIVERY_ACK",
    "READ",
    "PLAYED",
    "DELETED",
    "Delivered",
    "Read",
    "open",
    "close",
    "WORKING",
    "FAILED",
    "delivered",
    "read",
    "logged_out",
]
shaped = st.recursive(
    scalars | st.sampled_from(STATES),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(KEYS), children, max_size=6)
    ),
    max_leaves=40,
)


def assert_normalizes_or_is_malformed(
    provider: Provider, body: bytes, headers: dict[str, str] | None = None
) -> None:
    try:
        result = normalizer.normalize(provider, "instance-1", headers or {}, body)
    except MalformedWebhook:
        return
    assert isinstance(result, NormalizedWebhook)
    for event in result.events:
        assert event.dedup_key.startswith(f"{provider.value}:instance-1:{event.kind.value}:")
        assert event.occurred_at is None or event.occurred_at.tzinfo is not None
    for label in result.ignored_types:
        assert 0 < len(label) <= 64


providers = st.sampled_from(sorted(EVENTS))


@PROPERTY
@given(provider=providers, value=json_values)
def test_any_json_value(provider: Provider, value: Any) -> None:
    assert_normalizes_or_is_malformed(provider, json.dumps(value).encode())


@PROPERTY
@given(provider=providers, data=st.data())
def test_any_content_in_a_known_event(provider: Provider, data: st.DataObject) -> None:
    event = data.draw(st.sampled_from(EVENTS[provider]))
    inner = data.draw(st.dictionaries(st.sampled_from(KEYS), shaped, max_size=8))
    envelope: dict[str, Any]
    if provider is Provider.WUZAPI:
        envelope = {"type": event, "state": data.draw(st.sampled_from(STATES)), "event": inner}
    else:
        envelope = {
            "event": event,
            "data": inner,
            "payload": inner,
            "me": inner,
            "timestamp": data.draw(shaped),
        }
    assert_normalizes_or_is_malformed(provider, json.dumps(envelope).encode())


@PROPERTY
@given(provider=providers, body=st.binary(max_size=300))
def test_any_bytes(provider: Provider, body: bytes) -> None:
    assert_normalizes_or_is_malformed(provider, body)
    assert_normalizes_or_is_malformed(provider, body, {"content-type": "application/x-www-form-urlencoded"})


@PROPERTY
@given(
    fields=st.dictionaries(st.sampled_from(["jsonData", "instanceName", "userID", "x"]), st.text(max_size=60))
)
def test_any_wuzapi_form(fields: dict[str, str]) -> None:
    body = urlencode(fields).encode()
    assert_normalizes_or_is_malformed(
        Provider.WUZAPI, body, {"content-type": "application/x-www-form-urlencoded"}
    )
