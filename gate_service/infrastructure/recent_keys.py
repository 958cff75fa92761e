"""The idempotency keys this process created lately, in memory, the oldest forgotten first."""

from __future__ import annotations

from collections import OrderedDict

# About a minute of the hot path at full speed: long enough for a client's retries to find their key.
DEFAULT_CAPACITY = 20_000


class BoundedRecentIntentKeys:
    """RecentIntentKeys in an OrderedDict. Saves a retried SubmitIntent its decision (a rate slot taken,
    then given back when the insert clashes); the Gate bench shows what that is worth."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[tuple[str, str], str] = OrderedDict()

    def intent_id(self, organization_id: str, idempotency_key: str) -> str | None:
        return self._keys.get((organization_id, idempotency_key))

    def remember(self, organization_id: str, idempotency_key: str, intent_id: str) -> None:
        self._keys[(organization_id, idempotency_key)] = intent_id
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
