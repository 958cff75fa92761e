"""API key secrets and principals: what a key looks like, how it is checked, who may grant what."""

from __future__ import annotations

import pytest

from libs.seedwork.access import Principal, Role
from libs.seedwork.api_keys import issue_key, parse_key, same_hash


def test_an_issued_key_is_recognised_by_its_prefix_and_hash() -> None:
    issued = issue_key()
    presented = parse_key(issued.secret)
    assert presented is not None
    assert presented.prefix == issued.prefix
    assert issued.prefix in issued.secret
    assert same_hash(presented.sha256, issued.sha256)


def test_two_keys_never_share_a_secret_or_a_hash() -> None:
    first, second = issue_key(), issue_key()
    assert first.secret != second.secret
    assert not same_hash(first.sha256, second.sha256)


def test_a_key_with_one_character_changed_does_not_match() -> None:
    issued = issue_key()
    tampered = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    presented = parse_key(tampered)
    assert presented is not None and not same_hash(presented.sha256, issued.sha256)


@pytest.mark.parametrize(
    "secret", ["", "Bearer", "wl_", "wl_short_body", "xx_abcdefgh_body", "wl_abcdefgh_", "wl_abcdefgh"]
)
def test_something_not_shaped_like_a_key_is_not_parsed(secret: str) -> None:
    assert parse_key(secret) is None


def test_a_caller_grants_at_most_its_own_role() -> None:
    admin = Principal("org-1", Role.ADMIN, "key-1")
    assert admin.may_grant(Role.MEMBER) and admin.may_grant(Role.ADMIN)
    assert not admin.may_grant(Role.OWNER)
    assert Principal.service().may_grant(Role.OWNER)


def test_events_name_a_key_caller_by_its_key_and_the_service_as_service() -> None:
    assert Principal("org-1", Role.MEMBER, "0193").actor == "key:0193"
    assert Principal.service().actor == "service"
    assert Principal.service().is_service and not Principal("org-1", Role.OWNER, "k").is_service


def test_the_actor_of_a_call_is_its_principals_and_empty_outside_one() -> None:
    from libs.rpc.principal import current_actor, reset_principal, set_principal

    assert current_actor() == ""  # the system's own work (a worker, a timer) names no caller
    token = set_principal(Principal("org-1", Role.ADMIN, "0193"))
    try:
        assert current_actor() == "key:0193"
    finally:
        reset_principal(token)
    assert current_actor() == ""
