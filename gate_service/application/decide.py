"""The decision as the application runs it: precheck, shortlist, one rate snapshot, the gate's verdicts,
then atomic reservation of the best candidate (the next best when a concurrent decision won the slot)."""

from __future__ import annotations

import weakref

from gate_service.application.ports import RateStore
from gate_service.domain.decision import DecisionOutcome, DecisionReason, DecisionRecord, Verdict
from gate_service.domain.gate import DispatchGate, apply_decision
from gate_service.domain.intent import MessageIntent
from gate_service.domain.projection import GateProjection, InstanceState
from gate_service.domain.rates import Reservation
from libs.seedwork.clock import Clock

_CONTACT = (DecisionReason.CONTACT_MIN_INTERVAL, DecisionReason.CONTACT_RATE_LIMIT)
_PARKABLE = (DecisionReason.RATE_LIMIT, DecisionReason.MIN_INTERVAL)


class DecisionService:
    def __init__(
        self, gate: DispatchGate, projection: GateProjection, rates: RateStore, clock: Clock
    ) -> None:
        self.gate = gate
        self.projection = projection
        self.rates = rates
        self.clock = clock
        self._reservations: weakref.WeakKeyDictionary[MessageIntent, Reservation] = (
            weakref.WeakKeyDictionary()
        )

    async def decide(self, intent: MessageIntent) -> DecisionRecord:
        """Decide a PENDING or QUEUED intent and move it to the outcome (events recorded on the intent)."""
        now = self.clock.now()
        attempt = intent.attempts + 1
        chosen: InstanceState | None = None
        evaluation = self.gate.precheck(intent, now, attempt)
        if evaluation is None:
            shortlist = self.projection.shortlist(intent.organization_id, intent.purpose, now)
            snapshot = await self.rates.snapshot(
                intent.organization_id, intent.target.value, [s.instance_id for s in shortlist.ready], now
            )
            evaluation = self.gate.evaluate(
                intent,
                now=now,
                attempt=attempt,
                projection=self.projection,
                shortlist=shortlist,
                snapshot=snapshot,
            )
            while evaluation.outcome is None and evaluation.ranked:
                best = evaluation.ranked[0]
                reservation = self.gate.reservation(intent, best, now, self.projection)
                result = await self.rates.reserve(reservation)
                if result.ok:
                    chosen = best.instance
                    self._reservations[intent] = reservation
                    self.projection.chosen(chosen.instance_id)
                    if best.caps.min_interval:
                        self.projection.park(
                            chosen.instance_id, now + best.caps.min_interval, DecisionReason.MIN_INTERVAL, now
                        )
                    break
                if result.reason is DecisionReason.PLAN_LIMIT:
                    evaluation.settle(DecisionOutcome.BLOCKED, DecisionReason.PLAN_LIMIT)
                elif result.reason in _CONTACT:
                    evaluation.settle(DecisionOutcome.QUEUED, result.reason, result.retry_at)
                else:
                    assert result.reason is not None
                    evaluation.refuse(best.instance.instance_id, result.reason, result.retry_at)
            for verdict in evaluation.verdicts.values():
                if (
                    verdict.verdict is Verdict.RECOVERABLE
                    and verdict.reason in _PARKABLE
                    and verdict.retry_at
                ):
                    self.projection.park(verdict.instance_id, verdict.retry_at, verdict.reason, now)
        record = evaluation.conclude(chosen.instance_id if chosen else None)
        apply_decision(intent, record, chosen)
        return record

    async def release(self, intent: MessageIntent) -> None:
        """The decision of `intent` will not be committed: give its slot back."""
        reservation = self._reservations.pop(intent, None)
        if reservation is not None:
            await self.rates.release(reservation)
