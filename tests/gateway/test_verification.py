"""The signature matrix: every provider's way of signing x every way a webhook can be forged or go stale,
checked against `SecretVerifier` with secrets derived as the operator configures them (ADR 0041)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.application.ports import SignatureRejected
from gateway.infrastructure.verification import EVOLUTION_RETRY_HORIZON, SecretVerifier
from libs.seedwork.shared_kernel import Provider
from libs.webhooks import webhook_secret

MASTER_KEY = b"master-key-of-this-test"
PREVIOUS_MASTER_KEY = b"master-key-before-rotation"
NEVER_A_MASTER_KEY = b"some-other-deployment"
INSTANCE = "0193a5d4-5c1e-7b2a-9f00-000000000001"
OTHER_INSTANCE = "0193a5d4-5c1e-7b2a-9f00-000000000002"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

WAHA_BODY = (
    b'{"id":"evt_01jc2v4k7c0000000000000000","timestamp":1764590400000,"event":"message.ack",'
    b'"session":"sales-1","payload":{"id":"true_5511987654321@c.us_3EB0C4","ack":3,"ackName":"READ"}}'
)
WUZAPI_JSON_BODY = b'{"event":{"MessageIDs":["3EB0C4"]},"state":"Read","type":"ReadReceipt"}'
WUZAPI_FORM_BODY = (
    b"instanceName=sales-1&jsonData=%7B%22type%22%3A%22ReadReceipt%22%2C%22state%22%3A%22Read%22%7D&userID=1"
)
EVOLUTION_BODY = (
    b'{"event":"messages.update","instance":"sales-1","data":{"keyId":"3EB0C4","status":"READ"},'
    b'"apikey":"not-a-real-key"}'
)
TURBOZAP_BODY = (
    b'{"event":"message.ack","instance_id":"sales-1","data":{"message_id":"3EB0C4","status":"read"}}'
)


def secret_of(instance_id: str, master_key: bytes = MASTER_KEY) -> str:
    return webhook_secret(master_key, instance_id)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(
    secret: str,
    *,
    issued: datetime = NOW,
    alg: str = "HS256",
    lifetime: timedelta = timedelta(minutes=10),
) -> str:
    """A token as Evolution's `jsonwebtoken.sign` makes it (with `alg` signed by HMAC where it names one)."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    iat = int(issued.timestamp())
    claims = {"iat": iat, "exp": iat + int(lifetime.total_seconds()), "app": "evolution", "action": "webhook"}
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}.get(alg)
    signature = "" if digest is None else b64url(hmac.digest(secret.encode(), signing_input.encode(), digest))
    return f"{signing_input}.{signature}"


@dataclass(frozen=True)
class Scheme:
    """How one provider (or one mode of it) proves a webhook: the provider route, a body it posts, the
    headers it sends for a body signed with a secret, and whether that proof covers the body."""

    name: str
    provider: Provider
    body: bytes
    headers: Callable[[str, bytes], dict[str, str]]
    proof_header: str
    signs_body: bool
    uses_jwt: bool = False


def waha_headers(secret: str, body: bytes) -> dict[str, str]:
    return {
        "x-webhook-hmac": hmac.new(secret.encode(), body, hashlib.sha512).hexdigest(),
        "x-webhook-hmac-algorithm": "sha512",
        "content-type": "application/json",
    }


def wuzapi_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"x-hmac-signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def static_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"x-whatlead-webhook-secret": secret, "x-webhook-event": "message.ack"}


def evolution_jwt_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"authorization": f"Bearer {jwt(secret)}", "content-type": "application/json"}


SCHEMES = [
    Scheme("waha", Provider.WAHA, WAHA_BODY, waha_headers, "x-webhook-hmac", signs_body=True),
    Scheme("simulator", Provider.SIMULATOR, WAHA_BODY, waha_headers, "x-webhook-hmac", signs_body=True),
    Scheme("wuzapi-json", Provider.WUZAPI, WUZAPI_JSON_BODY, wuzapi_headers, "x-hmac-signature", True),
    Scheme("wuzapi-form", Provider.WUZAPI, WUZAPI_FORM_BODY, wuzapi_headers, "x-hmac-signature", True),
    Scheme(
        "evolution-jwt",
        Provider.EVOLUTION,
        EVOLUTION_BODY,
        evolution_jwt_headers,
        "authorization",
        False,
        True,
    ),
    Scheme(
        "evolution-static",
        Provider.EVOLUTION,
        EVOLUTION_BODY,
        static_headers,
        "x-whatlead-webhook-secret",
        False,
    ),
    Scheme("turbozap", Provider.TURBOZAP, TURBOZAP_BODY, static_headers, "x-whatlead-webhook-secret", False),
]


def one_byte_changed(body: bytes) -> bytes:
    middle = len(body) // 2
    replacement = b"x" if body[middle : middle + 1] != b"x" else b"y"
    return body[:middle] + replacement + body[middle + 1 :]


def with_token(scheme: Scheme, token: str) -> tuple[dict[str, str], bytes]:
    """A JWT where the scheme's proof goes: Evolution's own header, or in place of another provider's
    signature (never a way around it)."""
    headers = scheme.headers(secret_of(INSTANCE), scheme.body)
    headers[scheme.proof_header] = f"Bearer {token}" if scheme.uses_jwt else token
    return headers, scheme.body


CASES: dict[str, Callable[[Scheme], tuple[dict[str, str], bytes]]] = {
    "valid": lambda s: (s.headers(secret_of(INSTANCE), s.body), s.body),
    "previous master key": lambda s: (s.headers(secret_of(INSTANCE, PREVIOUS_MASTER_KEY), s.body), s.body),
    "wrong secret": lambda s: (s.headers(secret_of(INSTANCE, NEVER_A_MASTER_KEY), s.body), s.body),
    "another instance's secret": lambda s: (s.headers(secret_of(OTHER_INSTANCE), s.body), s.body),
    "body changed by one byte": lambda s: (s.headers(secret_of(INSTANCE), s.body), one_byte_changed(s.body)),
    "header missing": lambda s: (
        {k: v for k, v in s.headers(secret_of(INSTANCE), s.body).items() if k != s.proof_header},
        s.body,
    ),
    "JWT expired beyond the retry horizon": lambda s: with_token(
        s, jwt(secret_of(INSTANCE), issued=NOW - EVOLUTION_RETRY_HORIZON - timedelta(seconds=1))
    ),
    "JWT expired within the retry horizon": lambda s: with_token(
        s, jwt(secret_of(INSTANCE), issued=NOW - timedelta(minutes=25))
    ),
    "JWT with alg none": lambda s: with_token(s, jwt(secret_of(INSTANCE), alg="none")),
    "JWT with another alg": lambda s: with_token(s, jwt(secret_of(INSTANCE), alg="HS512")),
}


def accepted(scheme: Scheme, case: str) -> bool:
    """What the matrix must come out as. A JWT or a static header proves the sender knows the secret but
    does not cover the body (the providers sign nothing else), so a changed body still passes there."""
    if case in ("valid", "previous master key"):
        return True
    if case == "body changed by one byte":
        return not scheme.signs_body
    if case == "JWT expired within the retry horizon":
        return scheme.uses_jwt
    return False


@pytest.fixture(scope="module")
def verifier() -> SecretVerifier:
    return SecretVerifier(MASTER_KEY, PREVIOUS_MASTER_KEY, EVOLUTION_RETRY_HORIZON)


def outcome(verifier: SecretVerifier, scheme: Scheme, headers: dict[str, str], body: bytes) -> str:
    try:
        verifier.verify(scheme.provider, INSTANCE, headers, body, NOW)
    except SignatureRejected as rejected:
        return f"rejected: {rejected.cause}"
    return "accepted"


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_signature_matrix_accepts_exactly_the_valid_ones(
    verifier: SecretVerifier, scheme: Scheme, case: str
) -> None:
    headers, body = CASES[case](scheme)
    result = outcome(verifier, scheme, headers, body)
    assert (result == "accepted") == accepted(scheme, case), result


def test_each_rejection_names_its_cause(verifier: SecretVerifier) -> None:
    waha, evolution = SCHEMES[0], SCHEMES[4]
    causes = {
        case: outcome(verifier, scheme, *CASES[case](scheme))
        for scheme, case in [
            (waha, "wrong secret"),
            (waha, "header missing"),
            (evolution, "JWT expired beyond the retry horizon"),
            (evolution, "JWT with alg none"),
            (evolution, "JWT with another alg"),
        ]
    }
    assert causes == {
        "wrong secret": "rejected: mismatch",
        "header missing": "rejected: missing",
        "JWT expired beyond the retry horizon": "rejected: expired",
        "JWT with alg none": "rejected: algorithm",
        "JWT with another alg": "rejected: algorithm",
    }


def evolution_verdict(verifier: SecretVerifier, authorization: str) -> str:
    return outcome(verifier, SCHEMES[4], {"authorization": authorization}, EVOLUTION_BODY)


def signed(header: dict[str, object], claims: object, secret: str | None = None) -> str:
    """A token with any header and claims, HS256-signed with the instance's secret."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    key = (secret or secret_of(INSTANCE)).encode()
    return f"{signing_input}.{b64url(hmac.digest(key, signing_input.encode(), hashlib.sha256))}"


IAT = int(NOW.timestamp())


@pytest.mark.parametrize(
    ("authorization", "cause"),
    [
        ("Basic dXNlcjpwYXNz", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer not-a-token", "malformed"),
        ("Bearer a.b", "malformed"),
        ("Bearer a.b.c.d", "malformed"),
        ("Bearer " + "a" * 5000 + ".b.c", "malformed"),
        ("Bearer !!!.###.$$$", "malformed"),
        ("Bearer x.y.", "malformed"),
        (f"Bearer {b64url(json.dumps({'alg': 'HS256'}).encode())}.e30.", "malformed"),
        (f"Bearer {b64url(b'not json')}.{b64url(b'{}')}.{b64url(bytes(32))}", "malformed"),
        (f"Bearer {b64url(b'[1]')}.{b64url(b'{}')}.{b64url(bytes(32))}", "malformed"),
        (f"Bearer {b64url(json.dumps({'alg': 'HS256'}).encode())}.e30.{b64url(bytes(16))}", "malformed"),
        # A header asking for an extension we do not implement.
        ("Bearer " + signed({"alg": "HS256", "crit": ["b64"]}, {"iat": IAT, "exp": IAT + 600}), "malformed"),
        ("Bearer " + signed({"alg": "RS256"}, {"iat": IAT, "exp": IAT + 600}), "algorithm"),
        ("Bearer " + signed({"alg": "hs256"}, {"iat": IAT, "exp": IAT + 600}), "algorithm"),
        # Validly signed, but claims that are not Evolution's: no way to place it in time.
        ("Bearer " + signed({"alg": "HS256"}, {"exp": IAT + 600}), "malformed"),
        ("Bearer " + signed({"alg": "HS256"}, {"iat": IAT, "exp": True}), "malformed"),
        ("Bearer " + signed({"alg": "HS256"}, {"iat": IAT, "exp": "tomorrow"}), "malformed"),
        ("Bearer " + signed({"alg": "HS256"}, {"iat": IAT, "exp": float("inf")}), "malformed"),
        ("Bearer " + signed({"alg": "HS256"}, [IAT]), "malformed"),
        # Well formed but signed with something else: nothing of its claims is read.
        ("Bearer " + signed({"alg": "HS256"}, {"iat": "x"}, secret_of(OTHER_INSTANCE)), "mismatch"),
    ],
)
def test_malformed_or_foreign_tokens_are_refused_with_their_cause(
    verifier: SecretVerifier, authorization: str, cause: str
) -> None:
    assert evolution_verdict(verifier, authorization) == f"rejected: {cause}"


def test_a_token_is_good_until_the_horizon_after_it_was_issued_whatever_its_own_expiry() -> None:
    verifier = SecretVerifier(MASTER_KEY, None, evolution_retry_horizon=timedelta(minutes=15))
    token = jwt(secret_of(INSTANCE), issued=NOW - timedelta(minutes=15))
    assert evolution_verdict(verifier, f"Bearer {token}") == "accepted"
    late = jwt(secret_of(INSTANCE), issued=NOW - timedelta(minutes=15, seconds=1))
    assert evolution_verdict(verifier, f"bearer {late}") == "rejected: expired"
    # A token minted with a longer life than Evolution's stays good for that life.
    long_lived = jwt(secret_of(INSTANCE), issued=NOW - timedelta(hours=1), lifetime=timedelta(hours=2))
    assert evolution_verdict(verifier, f"Bearer {long_lived}") == "accepted"


def test_without_a_previous_master_key_only_the_current_one_is_accepted() -> None:
    verifier = SecretVerifier(MASTER_KEY, None)
    waha = SCHEMES[0]
    assert outcome(verifier, waha, waha_headers(secret_of(INSTANCE), WAHA_BODY), WAHA_BODY) == "accepted"
    stale = waha_headers(secret_of(INSTANCE, PREVIOUS_MASTER_KEY), WAHA_BODY)
    assert outcome(verifier, waha, stale, WAHA_BODY) == "rejected: mismatch"


@pytest.mark.parametrize(
    ("algorithm", "verdict"),
    [("sha512", "accepted"), ("SHA512", "accepted"), ("sha256", "rejected: algorithm")],
)
def test_waha_refuses_any_announced_algorithm_but_sha512(
    verifier: SecretVerifier, algorithm: str, verdict: str
) -> None:
    headers = waha_headers(secret_of(INSTANCE), WAHA_BODY) | {"x-webhook-hmac-algorithm": algorithm}
    assert outcome(verifier, SCHEMES[0], headers, WAHA_BODY) == verdict


@pytest.mark.parametrize(
    "signature",
    ["", "zz" * 64, "ab" * 63, "ab" * 65, "sha512=" + "ab" * 64, "ab" * 32],
)
def test_a_signature_that_is_not_the_right_length_of_hex_is_malformed_or_missing(
    verifier: SecretVerifier, signature: str
) -> None:
    verdict = outcome(verifier, SCHEMES[0], {"x-webhook-hmac": signature}, WAHA_BODY)
    assert verdict == ("rejected: missing" if not signature else "rejected: malformed")


def test_an_upper_case_hex_signature_is_the_same_signature(verifier: SecretVerifier) -> None:
    signature = hmac.new(secret_of(INSTANCE).encode(), WUZAPI_JSON_BODY, hashlib.sha256).hexdigest().upper()
    headers = {"x-hmac-signature": signature}
    assert outcome(verifier, SCHEMES[2], headers, WUZAPI_JSON_BODY) == "accepted"


def test_a_static_secret_with_characters_beyond_ascii_is_a_mismatch_not_an_error(
    verifier: SecretVerifier,
) -> None:
    headers = {"x-whatlead-webhook-secret": "é" * 64}
    assert outcome(verifier, SCHEMES[6], headers, TURBOZAP_BODY) == "rejected: mismatch"


def test_an_empty_master_key_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="empty"):
        SecretVerifier(b"", None)


def test_the_body_is_never_parsed_only_signed(verifier: SecretVerifier) -> None:
    body = bytes(range(256))  # neither JSON nor UTF-8
    headers = waha_headers(secret_of(INSTANCE), body)
    assert outcome(verifier, SCHEMES[0], headers, body) == "accepted"


proof_values = st.one_of(
    st.text(max_size=300),
    st.builds(lambda parts: "Bearer " + ".".join(parts), st.lists(st.text(max_size=80), max_size=4)),
    st.builds(lambda raw: "Bearer " + ".".join(b64url(r) for r in raw), st.lists(st.binary(), max_size=4)),
)


@settings(max_examples=300, deadline=None)
@given(
    provider=st.sampled_from(list(Provider)),
    values=st.dictionaries(
        st.sampled_from(
            [
                "authorization",
                "x-webhook-hmac",
                "x-webhook-hmac-algorithm",
                "x-hmac-signature",
                "x-whatlead-webhook-secret",
            ]
        ),
        proof_values,
    ),
    body=st.binary(max_size=200),
)
def test_hostile_headers_are_only_ever_rejected_with_a_cause(
    provider: Provider, values: dict[str, str], body: bytes
) -> None:
    verifier = SecretVerifier(MASTER_KEY, PREVIOUS_MASTER_KEY)
    with pytest.raises(SignatureRejected) as rejected:
        verifier.verify(provider, INSTANCE, values, body, NOW)
    assert rejected.value.cause in {"missing", "mismatch", "expired", "malformed", "algorithm"}
