"""Subject tokens of ids: one per id, NATS-safe, and no two ids alike."""

from __future__ import annotations

import re

from libs.messaging.subjects import id_token, organization_token

SAFE = re.compile(r"[A-Za-z0-9_-]+")


def test_a_uuid_is_its_own_token() -> None:
    assert (
        organization_token("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") == "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    )


def test_any_other_id_becomes_a_safe_token_unlike_any_plain_one() -> None:
    odd = ["org.one", "org one", "org*", "org>", "_x", "ünïcode", "a" * 65, "a.b.c"]
    tokens = [id_token(identifier) for identifier in odd]
    assert all(SAFE.fullmatch(token) for token in tokens)
    assert len(set(tokens)) == len(tokens)
    assert all(token.startswith("_") for token in tokens)
    assert id_token("org.one") != id_token("org-one")
