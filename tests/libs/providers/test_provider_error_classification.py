"""Unit: how each provider's failures are classified (no I/O: the classifiers are pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.providers.base import HttpFailure, classify_http_failure, parse_retry_after, safe_hint
from libs.providers.evolution import evolution_rule
from libs.providers.port import ErrorClass, ProviderError, Restriction
from libs.providers.turbozap import turbozap_rule
from libs.providers.waha import waha_rule
from libs.providers.wuzapi import wuzapi_rule

RULES = {"EVOLUTION": evolution_rule, "WAHA": waha_rule, "WUZAPI": wuzapi_rule, "TURBOZAP": turbozap_rule}
Expected = tuple[ErrorClass, Restriction | None, str]


def failure(
    status: int, body: object = None, text: str | None = None, *, idempotent: bool = False, **headers: str
) -> HttpFailure:
    import json

    raw = text if text is not None else (json.dumps(body) if body is not None else "")
    return HttpFailure(
        status=status,
        body=body,
        text=raw,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        idempotent=idempotent,
    )


def classify(provider: str, f: HttpFailure) -> Expected:
    error = classify_http_failure(provider, f, RULES[provider])
    assert error.provider == provider and error.status == f.status
    return error.error_class, error.restriction, error.code


# --- the rules every provider shares ---------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(RULES))
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (502, (ErrorClass.AMBIGUOUS, None, "http_502")),
        (503, (ErrorClass.TRANSIENT, None, "http_503")),
        (504, (ErrorClass.AMBIGUOUS, None, "http_504")),
        (408, (ErrorClass.TRANSIENT, None, "http_408")),
        (429, (ErrorClass.TRANSIENT, None, "http_429")),
        (401, (ErrorClass.RESTRICTED, Restriction.UNAUTHORIZED, "http_401")),
        (403, (ErrorClass.RESTRICTED, Restriction.UNAUTHORIZED, "http_403")),
        (413, (ErrorClass.PERMANENT, None, "http_413")),
        (422, (ErrorClass.PERMANENT, None, "http_422")),
    ],
)
def test_common_status_rules(provider: str, status: int, expected: Expected) -> None:
    assert classify(provider, failure(status, {"message": "x"})) == expected


@pytest.mark.parametrize("provider", ["WAHA", "WUZAPI"])
def test_a_500_on_a_send_may_have_sent_it(provider: str) -> None:
    assert classify(provider, failure(500, {"message": "x"})) == (ErrorClass.AMBIGUOUS, None, "http_500")


@pytest.mark.parametrize("provider", sorted(RULES))
@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_5xx_on_a_lookup_is_only_transient(provider: str, status: int) -> None:
    f = failure(status, {"message": "x"}, idempotent=True)
    assert classify(provider, f) == (ErrorClass.TRANSIENT, None, f"http_{status}")


@pytest.mark.parametrize("provider", ["WAHA", "WUZAPI", "TURBOZAP"])
def test_other_400s_are_permanent(provider: str) -> None:
    assert classify(provider, failure(400, {"message": "x"})) == (ErrorClass.PERMANENT, None, "http_400")


@pytest.mark.parametrize("provider", sorted(RULES))
def test_error_463_anywhere_is_a_timelock(provider: str) -> None:
    f = failure(500, {"error": "failed: server returned error 463"})
    assert classify(provider, f) == (
        ErrorClass.RESTRICTED,
        Restriction.REACHOUT_TIMELOCK,
        "reachout_timelock",
    )


def test_whatsapp_401_in_the_text_is_a_logout() -> None:
    f = failure(500, {"statusCode": 500, "exception": {"message": "2 UNKNOWN: server returned error 401"}})
    assert classify("WAHA", f) == (ErrorClass.RESTRICTED, Restriction.LOGGED_OUT, "logged_out")


def test_retry_after_is_kept_for_429_and_5xx() -> None:
    assert classify_http_failure("WAHA", failure(429, {}, Retry_After="3")).retry_after == 3.0
    assert classify_http_failure("WAHA", failure(503, {}, Retry_After="10")).retry_after == 10.0


def test_unknown_body_shapes_are_still_classified() -> None:
    assert classify("TURBOZAP", failure(502, text="<html>Bad Gateway</html>")) == (
        ErrorClass.AMBIGUOUS,
        None,
        "http_502",
    )
    assert classify("WUZAPI", failure(418, None, text="")) == (ErrorClass.PERMANENT, None, "http_418")


# --- Evolution API -------------------------------------------------------------------------------------


def test_evolution_not_on_whatsapp() -> None:
    body = {
        "status": 400,
        "error": "Bad Request",
        "response": {
            "message": [{"jid": "5511900000000@s.whatsapp.net", "exists": False, "number": "5511900000000"}]
        },
    }
    assert classify("EVOLUTION", failure(400, body)) == (ErrorClass.PERMANENT, None, "not_on_whatsapp")


def test_evolution_existing_number_in_a_400_is_not_misread() -> None:
    body = {"status": 400, "error": "Bad Request", "response": {"message": [{"exists": True, "jid": "x"}]}}
    assert classify("EVOLUTION", failure(400, body)) == (ErrorClass.AMBIGUOUS, None, "http_400")


def test_evolution_missing_instance() -> None:
    body = {"status": 404, "error": "Not Found", "response": {"message": ['The "x" instance does not exist']}}
    assert classify("EVOLUTION", failure(404, body)) == (
        ErrorClass.RESTRICTED,
        Restriction.DISCONNECTED,
        "instance_not_found",
    )


@pytest.mark.parametrize("status", [400, 500])
def test_evolution_connection_closed_inside_a_send_is_ambiguous(status: int) -> None:
    # whatsapp.baileys.service.ts (2.3.6) rethrows any error of the send, wherever it happened.
    body = {"status": status, "error": "Bad Request", "response": {"message": ["Error: Connection Closed"]}}
    assert classify("EVOLUTION", failure(status, body)) == (ErrorClass.AMBIGUOUS, None, f"http_{status}")


# --- WAHA ----------------------------------------------------------------------------------------------


def _session_guard(status: str) -> HttpFailure:
    return failure(
        422,
        {
            "error": "Session status is not as expected. Try again later or restart the session",
            "session": "default",
            "status": status,
            "expected": ["WORKING"],
        },
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("FAILED", (ErrorClass.RESTRICTED, Restriction.DISCONNECTED, "session_failed")),
        ("STOPPED", (ErrorClass.RESTRICTED, Restriction.DISCONNECTED, "session_stopped")),
        ("SCAN_QR_CODE", (ErrorClass.RESTRICTED, Restriction.LOGGED_OUT, "session_needs_qr")),
        ("STARTING", (ErrorClass.TRANSIENT, None, "session_starting")),
        ("SOMETHING_NEW", (ErrorClass.RESTRICTED, Restriction.DISCONNECTED, "session_not_working")),
    ],
)
def test_waha_session_guard(status: str, expected: Expected) -> None:
    assert classify("WAHA", _session_guard(status)) == expected


def test_waha_starting_session_suggests_a_short_wait() -> None:
    assert classify_http_failure("WAHA", _session_guard("STARTING"), waha_rule).retry_after == 5.0


def test_waha_timelock_exact_body() -> None:
    body = {
        "statusCode": 500,
        "timestamp": "2026-07-20T15:27:41.024Z",
        "exception": {
            "message": "2 UNKNOWN: server returned error 463",
            "code": 2,
            "details": "server returned error 463",
            "metadata": {},
            "name": "Error",
        },
    }
    assert classify("WAHA", failure(500, body)) == (
        ErrorClass.RESTRICTED,
        Restriction.REACHOUT_TIMELOCK,
        "reachout_timelock",
    )


def test_waha_unknown_session() -> None:
    body = {
        "statusCode": 404,
        "message": "We didn't find a session with name 'default'",
        "error": "Not Found",
    }
    assert classify("WAHA", failure(404, body)) == (
        ErrorClass.RESTRICTED,
        Restriction.DISCONNECTED,
        "session_not_found",
    )


def test_waha_other_404_is_permanent() -> None:
    body = {"statusCode": 404, "message": "Cannot POST /api/sendTxt", "error": "Not Found"}
    assert classify("WAHA", failure(404, body)) == (ErrorClass.PERMANENT, None, "http_404")


# --- wuzapi --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("no session", (ErrorClass.RESTRICTED, Restriction.DISCONNECTED, "no_session")),
        (
            "error sending message: websocket not connected",
            (ErrorClass.RESTRICTED, Restriction.DISCONNECTED, "no_session"),
        ),
        (
            "error sending message: the store doesn't contain a device JID",
            (ErrorClass.RESTRICTED, Restriction.LOGGED_OUT, "not_logged_in"),
        ),
        (
            "error sending message: server returned error 463",
            (ErrorClass.RESTRICTED, Restriction.REACHOUT_TIMELOCK, "reachout_timelock"),
        ),
        ("error sending message: context deadline exceeded", (ErrorClass.AMBIGUOUS, None, "http_500")),
        ("failed to upload file: EOF", (ErrorClass.TRANSIENT, None, "pre_send_failure")),
    ],
)
def test_wuzapi_errors(error: str, expected: Expected) -> None:
    assert classify("WUZAPI", failure(500, {"code": 500, "error": error, "success": False})) == expected


# --- TurboZap ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (
            400,
            "Instance is not connected to WhatsApp",
            (ErrorClass.RESTRICTED, Restriction.DISCONNECTED, "instance_disconnected"),
        ),
        (404, "Instance not found", (ErrorClass.RESTRICTED, Restriction.DISCONNECTED, "instance_not_found")),
        (400, "Invalid recipient phone number", (ErrorClass.PERMANENT, None, "invalid_recipient")),
        (400, "Either media_url or base64 is required", (ErrorClass.PERMANENT, None, "http_400")),
        (500, "Failed to send message", (ErrorClass.AMBIGUOUS, None, "wrapped_500")),
        (500, "Failed to send media", (ErrorClass.AMBIGUOUS, None, "wrapped_500")),
        (500, "Failed to get instance", (ErrorClass.TRANSIENT, None, "instance_lookup_failed")),
    ],
)
def test_turbozap_errors(status: int, message: str, expected: Expected) -> None:
    assert (
        classify("TURBOZAP", failure(status, {"success": False, "error": {"message": message}})) == expected
    )


# --- helpers ---------------------------------------------------------------------------------------------


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Fri, 20 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Fri, 20 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("999999") == 3600.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_hints_carry_no_phone_numbers_and_stay_short() -> None:
    hint = safe_hint("number 5511987654321 does not exist " + "x" * 500)
    assert "5511987654321" not in hint and len(hint) <= 120
    assert "463" in safe_hint("server returned error 463")


def test_error_message_never_holds_the_raw_body() -> None:
    body = {
        "status": 400,
        "error": "Bad Request",
        "apikey": "SECRET-KEY-123",
        "response": {"message": ["text is required"]},
    }
    error = classify_http_failure("EVOLUTION", failure(400, body), evolution_rule)
    assert "SECRET-KEY-123" not in str(error)
    assert "text is required" in str(error)


def test_restriction_only_with_restricted() -> None:
    with pytest.raises(ValueError):
        ProviderError(ErrorClass.RESTRICTED, "x")
    with pytest.raises(ValueError):
        ProviderError(ErrorClass.TRANSIENT, "x", restriction=Restriction.PERMANENT_BAN)


def test_only_transient_is_retryable() -> None:
    assert ProviderError.transient("t").retryable
    assert not ProviderError.ambiguous("a").retryable
    assert not ProviderError.permanent("p").retryable
    assert not ProviderError.restricted(Restriction.TEMPORARY_BAN, "r").retryable


def test_hints_redact_key_like_pairs() -> None:
    assert "abc123" not in safe_hint("invalid apikey=abc123 for instance")
