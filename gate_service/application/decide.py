"""The decision as the application runs it: precheck, shortlist, one rate snapshot, the gate's plan, then
atomic reservation of the best candidate (the next best when a concurrent decision won the slot)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from gate_service.application.ports import RateStore
from gate_service.domain.decision import DecisionReason, DecisionRecord, Verdict
from gate_service.domain.gate import DecisionPlan, DispatchGate, RankedCandidate, apply_decision
from gate_service.domain.intent import MessageIntent
from gate_service.domain.ports import GateUnitOfWork
from gate_service.domain.projection import GateProjection
from gate_service.domain.rates import Reservation, ReservationResult
from libs.seedwork.clock import Clock

log = logging.getLogger(__name__)

_PARKABLE = (DecisionReason.RATE_LIMIT, DecisionReason.MIN_INTERVAL)


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision made: its record (already applied to the intent) and the slot it took, if any."""

    record: DecisionRecord
    reservation: Reservation | None = None


class DecisionService:
    """Decides PENDING and QUEUED intents for the use cases that create or re-decide them."""

    def __init__(
        self, gate: DispatchGate, projection: GateProjection, rates: RateStore, clock: Clock
    ) -> None:
        self.gate = gate
        self.projection = projection
        self.rates = rates
        self.clock = clock

    async def decide(self, intent: MessageIntent) -> Decision:
        """Decide `intent` and move it to the outcome (its events are recorded on the intent)."""
        now = self.clock.now()
        attempt = intent.attempts + 1
        plan = self.gate.precheck(intent, now, attempt)
        if plan is not None:
            record = self.gate.conclude(plan)
            apply_decision(intent, record, None)
            return Decision(record)
        shortlist = (
            self.projection.pinned(intent.organization_id, intent.pinned_instance_id)
            if intent.pinned_instance_id
            else self.projection.shortlist(intent.organization_id, intent.purpose, now)
        )
        snapshot = await self.rates.snapshot(
            intent.organization_id, intent.target.value, [s.instance_id for s in shortlist.ready], now
        )
        plan = self.gate.plan(
            intent,
            now=now,
            attempt=attempt,
            projection=self.projection,
            shortlist=shortlist,
            snapshot=snapshot,
        )
        chosen, reservation, refused = await self._reserve(plan)
        record = self.gate.conclude(
            plan, chosen=chosen.instance.instance_id if chosen else None, refused=refused
        )
        self._hint_projection(record, chosen)
        apply_decision(intent, record, chosen.instance if chosen else None)
        return Decision(record, reservation)

    async def release(self, decision: Decision) -> None:
        """The decision will not be committed: give its slot back."""
        if decision.reservation is not None:
            await self.rates.release(decision.reservation)

    async def decide_and_commit(self, uow: GateUnitOfWork, intents: Sequence[MessageIntent]) -> None:
        """Decide intents claimed in `uow` and commit them together; if the commit fails, nothing was
        written, so every slot taken goes back before the error goes on."""
        decisions = []
        for intent in intents:
            decisions.append(await self.decide(intent))
            uow.track(intent)
        if not intents:
            return
        try:
            await uow.commit()
        except Exception:
            for decision in decisions:
                await self.release_quietly(decision)
            raise

    async def release_quietly(self, decision: Decision) -> None:
        """`release` while another error is on its way to the caller: a slot that cannot be given back now
        (the rate store is away) is logged, not raised over that error; it only makes the Gate send less."""
        try:
            await self.release(decision)
        except Exception as exc:
            log.warning("could not give back a reservation", extra={"error": type(exc).__name__})

    async def _reserve(
        self, plan: DecisionPlan
    ) -> tuple[RankedCandidate | None, Reservation | None, list[tuple[str, ReservationResult]]]:
        """Try the ranked candidates best first until one slot is taken or a refusal concerns them all."""
        refused: list[tuple[str, ReservationResult]] = []
        for candidate in plan.ranked:
            reservation = self.gate.reservation(plan, candidate, self.projection)
            result = await self.rates.reserve(reservation)
            if result.ok:
                return candidate, reservation, refused
            refused.append((candidate.instance.instance_id, result))
            if result.concerns_every_candidate:
                break
        return None, None, refused

    def _hint_projection(self, record: DecisionRecord, chosen: RankedCandidate | None) -> None:
        """What the decision learned about instances, for the candidate index: the chosen one goes to the
        back of its tier (and sits out its minimum interval), full windows are skipped until they reset."""
        now = record.decided_at
        if chosen is not None:
            self.projection.chosen(chosen.instance.instance_id)
            if chosen.caps.min_interval:
                self.projection.park(
                    chosen.instance.instance_id,
                    now + chosen.caps.min_interval,
                    DecisionReason.MIN_INTERVAL,
                    now,
                )
        for verdict in record.candidates:
            if verdict.verdict is Verdict.RECOVERABLE and verdict.reason in _PARKABLE and verdict.retry_at:
                self.projection.park(verdict.instance_id, verdict.retry_at, verdict.reason, now)
