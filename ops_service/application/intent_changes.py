"""The intent changes a batch of freshly recorded facts makes, in causal order per intent
(ops_service.domain.intent_changes), emitted in the transaction that records the facts.

Only fresh facts make changes (a redelivered fact was recorded, and its change emitted, the first time).
The consumers of the Gate's, the Executor's and the gateway's streams record concurrently; they serialize
on the intents and messages a batch is about (intent keys first, then message keys: never the other way,
so they cannot deadlock), so a change held back by one is always released by the other:

- an Executor fact (attempt, delivery) of an intent whose approval is not recorded yet is held; the first
  approval emits itself, then every Executor fact recorded before it, in the order recorded;
- a reply quoting a message whose send is not emitted yet is held; emitting the send emits it after.
"""

from __future__ import annotations

from collections.abc import Sequence

from ops_service.application.timeline_ports import IntentChangeLookups, SentMessage
from ops_service.domain.intent_changes import (
    ChangeKind,
    IntentChanged,
    change_of,
    intent_of,
    kind_of,
    waits_for_approval,
)
from ops_service.domain.timeline import AttemptEnded, ProviderReported, TimelineRecord


def _intent_key(intent_id: str) -> str:
    return f"intent:{intent_id}"


def _message_key(message: SentMessage) -> str:
    return f"message:{message[0]}:{message[1]}"


def _sent(record: TimelineRecord) -> SentMessage | None:
    fact = record.fact
    if isinstance(fact, AttemptEnded) and fact.outcome == "SENT" and fact.provider_message_id:
        return fact.instance_id, fact.provider_message_id
    return None


def _quoted(record: TimelineRecord) -> SentMessage | None:
    fact = record.fact
    if isinstance(fact, ProviderReported) and kind_of(record) is ChangeKind.REPLIED:
        return fact.instance_id, fact.reply_to_provider_message_id
    return None


async def serialize_batch(store: IntentChangeLookups, records: Sequence[TimelineRecord]) -> None:
    """Before recording `records`: wait for, and hold, the intents and messages they are about."""
    intents = sorted({_intent_key(i) for r in records if kind_of(r) is not None and (i := intent_of(r))})
    messages = sorted({_message_key(m) for r in records if (m := _sent(r) or _quoted(r)) is not None})
    if intents:
        await store.serialize(intents)
    if messages:
        await store.serialize(messages)


class IntentChanges:
    """The changes of one batch, computed after its facts were recorded (`approved_before`: the intents
    whose approval was recorded before the batch, read before recording it)."""

    def __init__(self, store: IntentChangeLookups, approved_before: set[str]) -> None:
        self._store = store
        self._approved = set(approved_before)
        self._emitted: set[str] = set()  # facts' event ids already made a change in this batch
        self._out: list[tuple[TimelineRecord, ChangeKind, str]] = []

    @staticmethod
    def intents(records: Sequence[TimelineRecord]) -> list[str]:
        """The intents whose approval `approved_before` must say (read before recording)."""
        return sorted({i for r in records if kind_of(r) is not None and (i := intent_of(r))})

    async def of(self, fresh: Sequence[TimelineRecord]) -> list[IntentChanged]:
        replies = [m for r in fresh if (m := _quoted(r)) is not None]
        sent_by = await self._store.sent_by(replies) if replies else {}
        if unknown := sorted(set(sent_by.values()) - self._approved):
            self._approved |= await self._store.approved(unknown)
        first_approvals = [
            intent
            for r in fresh
            if kind_of(r) is ChangeKind.APPROVED and (intent := intent_of(r)) not in self._approved
        ]
        held = await self._held(first_approvals)
        released = [m for records in held.values() for r in records if (m := _sent(r)) is not None]
        if released:  # the batch's own messages are held already (serialize_batch); these after its intents
            await self._store.serialize(sorted({_message_key(m) for m in released}))
        sends = [*(m for r in fresh if (m := _sent(r)) is not None), *released]
        waiting_replies = await self._replies(sends)
        for record in fresh:
            kind = kind_of(record)
            if kind is None:
                continue
            if kind is ChangeKind.REPLIED:
                quoted = _quoted(record)
                replied = sent_by.get(quoted) if quoted is not None else None
                if replied is not None and replied in self._approved:
                    self._emit(record, kind, replied)
                continue  # else held: emitted after its send
            intent = intent_of(record)
            if waits_for_approval(kind) and intent not in self._approved:
                continue  # held: emitted after the approval
            self._emit(record, kind, intent)
            if kind is ChangeKind.APPROVED and intent not in self._approved:
                self._approved.add(intent)
                for earlier in held.get(intent, []):
                    if (earlier_kind := kind_of(earlier)) is not None:
                        self._emit(earlier, earlier_kind, intent)
                        self._release_replies(earlier, intent, waiting_replies)
            self._release_replies(record, intent, waiting_replies)
        campaigns = await self._store.campaigns(sorted({intent for _, _, intent in self._out}))
        return [
            change_of(
                record,
                kind,
                intent_id=intent,
                campaign_id=record.campaign_id or campaigns.get(intent, ""),
            )
            for record, kind, intent in self._out
        ]

    async def _held(self, intents: Sequence[str]) -> dict[str, list[TimelineRecord]]:
        if not intents:
            return {}
        held: dict[str, list[TimelineRecord]] = {}
        for record in await self._store.executor_facts(sorted(set(intents))):
            held.setdefault(intent_of(record), []).append(record)
        return held

    async def _replies(self, sends: Sequence[SentMessage]) -> dict[SentMessage, list[TimelineRecord]]:
        if not sends:
            return {}
        replies: dict[SentMessage, list[TimelineRecord]] = {}
        for record in await self._store.replies_to(sorted(set(sends))):
            if (quoted := _quoted(record)) is not None:
                replies.setdefault(quoted, []).append(record)
        return replies

    def _release_replies(
        self, record: TimelineRecord, intent: str, waiting: dict[SentMessage, list[TimelineRecord]]
    ) -> None:
        sent = _sent(record)
        if sent is None:
            return
        for reply in waiting.get(sent, []):
            self._emit(reply, ChangeKind.REPLIED, intent)

    def _emit(self, record: TimelineRecord, kind: ChangeKind, intent: str) -> None:
        if record.recorded.event_id in self._emitted or not intent:
            return
        self._emitted.add(record.recorded.event_id)
        self._out.append((record, kind, intent))
