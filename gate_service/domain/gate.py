"""DispatchGate: decides IF, WHEN and THROUGH WHICH instance an intent may go. Deterministic and pure:
the application layer feeds it the projection, the rate snapshot and the clock, and reserves the slot.

Order: expiry -> not_before -> plan limit -> kill-switch -> per-contact protection -> candidates
(per-candidate rules) -> best ALLOW by InstanceDispatchScoreService -> (reservation) -> APPROVED;
only recoverable refusals -> QUEUED at the earliest time (DROPPED if that is past the validity);
otherwise BLOCKED with the dominant reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from gate_service.domain.decision import (
    SEVERITY,
    CandidateVerdict,
    DecisionOutcome,
    DecisionReason,
    DecisionRecord,
    Verdict,
)
from gate_service.domain.intent import ApprovedInstance, MessageIntent
from gate_service.domain.policies import GatePolicies, RateCaps
from gate_service.domain.projection import GateProjection, InstanceState, Shortlist
from gate_service.domain.rates import RateSnapshot, Reservation, next_hour
from gate_service.domain.rules import DEFAULT_RULES, CandidateRule, context_for, evaluate_candidate
from gate_service.domain.scoring import InstanceDispatchScoreService, ScoreInput


@dataclass(slots=True)  # one per ALLOW candidate of a decision, dropped with it
class Ranked:
    """An ALLOW candidate, with what its reservation must respect."""

    instance: InstanceState
    score: float
    caps: RateCaps


@dataclass
class Evaluation:
    """A decision in progress: either settled before any candidate, or candidates with verdicts and the
    ALLOW ones ranked best first, waiting for a reservation."""

    intent: MessageIntent
    now: datetime
    attempt: int
    outcome: DecisionOutcome | None = None
    reason: DecisionReason | None = None
    queued_until: datetime | None = None
    verdicts: dict[str, CandidateVerdict] = field(default_factory=dict)
    ranked: list[Ranked] = field(default_factory=list)
    excluded: dict[DecisionReason, int] = field(default_factory=dict)

    def settle(
        self, outcome: DecisionOutcome, reason: DecisionReason | None, until: datetime | None = None
    ) -> None:
        self.outcome, self.reason, self.queued_until = outcome, reason, until

    def refuse(self, instance_id: str, reason: DecisionReason, retry_at: datetime | None) -> None:
        """The reservation found the window full after all (a concurrent decision took the slot)."""
        verdict = self.verdicts[instance_id]
        self.verdicts[instance_id] = CandidateVerdict(
            **{
                **vars(verdict),
                "verdict": Verdict.RECOVERABLE,
                "reason": reason,
                "retry_at": retry_at,
                "score": 0.0,
            }
        )
        self.ranked = [r for r in self.ranked if r.instance.instance_id != instance_id]

    def conclude(self, chosen: str | None = None) -> DecisionRecord:
        if self.outcome is None:
            self._conclude_from_candidates(chosen)
        outcome, reason, until = self.outcome, self.reason, self.queued_until
        assert outcome is not None
        if outcome is DecisionOutcome.QUEUED and until is not None and until >= self.intent.expires_at:
            # It could not go before its validity ends: dropped now rather than queued in vain.
            outcome, reason, until = DecisionOutcome.DROPPED, DecisionReason.EXPIRED, None
        return DecisionRecord(
            intent_id=self.intent.id,
            outcome=outcome,
            reason=reason,
            decided_at=self.now,
            attempt=self.attempt,
            chosen_instance_id=chosen if outcome is DecisionOutcome.APPROVED else None,
            queued_until=until,
            candidates=tuple(self.verdicts.values()),
            excluded=dict(self.excluded),
        )

    def _conclude_from_candidates(self, chosen: str | None) -> None:
        if chosen is not None:
            self.settle(DecisionOutcome.APPROVED, None)
            return
        recoverable = [v for v in self.verdicts.values() if v.verdict is Verdict.RECOVERABLE and v.retry_at]
        if recoverable:
            earliest = min(recoverable, key=lambda v: v.retry_at)  # type: ignore[arg-type, return-value]
            self.settle(DecisionOutcome.QUEUED, earliest.reason, earliest.retry_at)
            return
        self.settle(DecisionOutcome.BLOCKED, self._dominant_reason())

    def _dominant_reason(self) -> DecisionReason:
        counts: Counter[DecisionReason] = Counter(self.excluded)
        counts.update(v.reason for v in self.verdicts.values() if v.verdict is Verdict.FINAL and v.reason)
        if not counts:
            return DecisionReason.NO_ELIGIBLE_INSTANCE
        return max(counts, key=lambda r: (counts[r], -SEVERITY.index(r) if r in SEVERITY else -99))


class DispatchGate:
    def __init__(
        self,
        policies: GatePolicies,
        *,
        scorer: InstanceDispatchScoreService | None = None,
        rules: tuple[CandidateRule, ...] = DEFAULT_RULES,
    ) -> None:
        self.policies = policies
        self.scorer = scorer or InstanceDispatchScoreService()
        self.rules = rules

    def precheck(self, intent: MessageIntent, now: datetime, attempt: int) -> Evaluation | None:
        """What is decided by the clock alone, before anything is read: expiry, then not_before."""
        evaluation = Evaluation(intent, now, attempt)
        if intent.is_expired(now):
            evaluation.settle(DecisionOutcome.DROPPED, DecisionReason.EXPIRED)
            return evaluation
        if intent.not_before is not None and now < intent.not_before:
            evaluation.settle(DecisionOutcome.QUEUED, DecisionReason.NOT_BEFORE, intent.not_before)
            return evaluation
        return None

    def evaluate(
        self,
        intent: MessageIntent,
        *,
        now: datetime,
        attempt: int,
        projection: GateProjection,
        shortlist: Shortlist,
        snapshot: RateSnapshot,
    ) -> Evaluation:
        evaluation = Evaluation(intent, now, attempt)
        org = intent.organization_id
        # Plan limit.
        plan = projection.plan(org)
        if plan is not None and (
            (plan.daily_cap and snapshot.org_day >= plan.daily_cap)
            or (plan.monthly_cap and snapshot.org_month >= plan.monthly_cap)
        ):
            evaluation.settle(DecisionOutcome.BLOCKED, DecisionReason.PLAN_LIMIT)
            return evaluation
        # Kill-switch on the organization or the campaign.
        if projection.paused_scope(org, intent.campaign_id, now) is not None:
            evaluation.settle(DecisionOutcome.BLOCKED, DecisionReason.OPS_PAUSED)
            return evaluation
        # Per-contact protection, whatever instance would send.
        contact = self.policies.contact
        last = snapshot.contact_last_sent_at
        if last is not None and contact.min_gap and now < last + contact.min_gap:
            evaluation.settle(
                DecisionOutcome.QUEUED, DecisionReason.CONTACT_MIN_INTERVAL, last + contact.min_gap
            )
            return evaluation
        if contact.per_hour and snapshot.contact_hour >= contact.per_hour:
            evaluation.settle(DecisionOutcome.QUEUED, DecisionReason.CONTACT_RATE_LIMIT, next_hour(now))
            return evaluation
        # Candidates: the shortlist, plus the sticky sender wherever it stands.
        candidates = list(shortlist.ready)
        sticky_id = snapshot.sticky_instance_id
        sticky = projection.instances.get(sticky_id) if sticky_id else None
        if (
            sticky is not None
            and sticky.organization_id == org
            and intent.purpose in sticky.purposes
            and all(c.instance_id != sticky.instance_id for c in candidates)
        ):
            candidates.append(sticky)
        evaluation.excluded = dict(shortlist.excluded)
        ranked: list[Ranked] = []
        for instance in candidates:
            ctx = context_for(
                instance,
                purpose=intent.purpose,
                type=intent.type,
                usage=snapshot.usage(instance.instance_id),
                policies=self.policies,
                pause=projection.instance_pause(instance.instance_id, org, now),
                now=now,
            )
            outcome = evaluate_candidate(ctx, self.rules)
            is_sticky = instance.instance_id == sticky_id
            reputation_score = instance.effective_score(self.policies)
            score = 0.0
            if outcome.verdict is Verdict.ALLOW:
                score = self.scorer.score(
                    ScoreInput(
                        reputation_score=reputation_score,
                        health=ctx.health,
                        phase=ctx.policy.phase,
                        connection_state=instance.connection_state,
                        rate_pressure=outcome.rate_pressure,
                        sticky=is_sticky,
                    )
                )
                ranked.append(Ranked(instance, score, ctx.caps))
            evaluation.verdicts[instance.instance_id] = CandidateVerdict(
                instance_id=instance.instance_id,
                verdict=outcome.verdict,
                reason=outcome.reason,
                retry_at=outcome.retry_at,
                score=score,
                reputation_score=reputation_score,
                health=ctx.health,
                phase=ctx.policy.phase,
                rate_pressure=round(outcome.rate_pressure, 4),
                sticky=is_sticky,
            )
        for parked in shortlist.parked:
            if parked.state.instance_id in evaluation.verdicts:
                continue
            evaluation.verdicts[parked.state.instance_id] = CandidateVerdict(
                instance_id=parked.state.instance_id,
                verdict=Verdict.RECOVERABLE,
                reason=parked.reason,
                retry_at=parked.until,
                reputation_score=parked.state.effective_score(self.policies),
                health=parked.state.effective_health(),
                phase=parked.state.effective_phase(self.policies),
            )
        # Stable sort: equal scores keep the index's least-recently-chosen order.
        evaluation.ranked = sorted(ranked, key=lambda r: -r.score)
        return evaluation

    def reservation(
        self, intent: MessageIntent, ranked: Ranked, now: datetime, projection: GateProjection
    ) -> Reservation:
        plan = projection.plan(intent.organization_id)
        return Reservation(
            organization_id=intent.organization_id,
            target=intent.target.value,
            instance_id=ranked.instance.instance_id,
            now=now,
            caps=ranked.caps,
            contact_min_gap=self.policies.contact.min_gap,
            contact_per_hour=self.policies.contact.per_hour,
            plan_daily_cap=plan.daily_cap if plan else 0,
            plan_monthly_cap=plan.monthly_cap if plan else 0,
        )


def apply_decision(intent: MessageIntent, record: DecisionRecord, chosen: InstanceState | None) -> None:
    """Moves the intent to the record's outcome (the aggregate enforces the invariants)."""
    match record.outcome:
        case DecisionOutcome.APPROVED:
            assert chosen is not None
            intent.approve(
                record,
                ApprovedInstance(
                    instance_id=chosen.instance_id,
                    provider=chosen.provider,
                    provider_instance_ref=chosen.provider_instance_ref,
                ),
            )
        case DecisionOutcome.QUEUED:
            assert record.reason is not None
            intent.queue(record, record.queued_until, record.reason)
        case DecisionOutcome.BLOCKED:
            intent.block(record, record.reason)
        case DecisionOutcome.DROPPED:
            intent.drop(record)
