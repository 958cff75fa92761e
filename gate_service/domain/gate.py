"""DispatchGate: decides IF, WHEN and THROUGH WHICH instance an intent may go. Deterministic and pure:
the application layer feeds it the projection, the rate snapshot and the clock, and reserves the slot.

Order: expiry -> not_before -> plan limit -> kill-switch -> per-contact protection -> candidates (the
pinned instance alone when the intent names one; per-candidate rules) -> best ALLOW by
InstanceDispatchScoreService -> (reservation) -> APPROVED;
only recoverable refusals -> QUEUED at the earliest time (DROPPED if that is past the validity);
no instance at all while the projection may still be behind the registry -> QUEUED for the grace;
otherwise BLOCKED with the dominant reason.

The gate reads in one direction: `precheck` / `plan` return an immutable DecisionPlan, the application
reserves a slot on its ranked candidates, and `conclude` turns the plan and the reservations' results into
the DecisionRecord.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import itemgetter
from typing import NamedTuple

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
from gate_service.domain.rates import RateSnapshot, Reservation, ReservationResult, next_hour
from gate_service.domain.rules import (
    DEFAULT_RULES,
    CandidateRule,
    ProjectionGrace,
    context_for,
    evaluate_candidate,
)
from gate_service.domain.scoring import InstanceDispatchScoreService, ScoreInput
from libs.seedwork.shared_kernel import TargetKind


class RankedCandidate(NamedTuple):
    """An ALLOW candidate, with what its reservation must respect."""

    instance: InstanceState
    score: float
    caps: RateCaps


class Settlement(NamedTuple):
    """An outcome reached without choosing a candidate."""

    outcome: DecisionOutcome
    reason: DecisionReason | None
    until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionPlan:
    """What the gate concluded before any slot is taken: either settled (by the clock, the plan, a pause or
    the contact's protection), or every candidate's verdict with the ALLOW ones ranked best first. The
    application reserves a slot on the ranked ones in order and hands the results to `DispatchGate.conclude`.
    """

    intent: MessageIntent
    now: datetime
    attempt: int
    settled: Settlement | None = None
    verdicts: tuple[CandidateVerdict, ...] = ()
    ranked: tuple[RankedCandidate, ...] = ()
    excluded: Mapping[DecisionReason, int] = field(default_factory=dict)


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
        self.grace = ProjectionGrace(policies.projection_grace)

    def precheck(self, intent: MessageIntent, now: datetime, attempt: int) -> DecisionPlan | None:
        """What is decided by the clock alone, before anything is read: expiry, then not_before."""
        if intent.is_expired(now):
            settled = Settlement(DecisionOutcome.DROPPED, DecisionReason.EXPIRED)
        elif intent.not_before is not None and now < intent.not_before:
            settled = Settlement(DecisionOutcome.QUEUED, DecisionReason.NOT_BEFORE, intent.not_before)
        else:
            return None
        return DecisionPlan(intent=intent, now=now, attempt=attempt, settled=settled)

    def plan(
        self,
        intent: MessageIntent,
        *,
        now: datetime,
        attempt: int,
        projection: GateProjection,
        shortlist: Shortlist,
        snapshot: RateSnapshot,
    ) -> DecisionPlan:
        settled = self._settle_for_every_candidate(intent, now, projection, snapshot)
        if settled is not None:
            return DecisionPlan(intent=intent, now=now, attempt=attempt, settled=settled)
        org = intent.organization_id
        pinned = intent.pinned_instance_id
        # Candidates: the shortlist, plus the sticky sender wherever it stands; a pinned intent has only
        # its instance, and only if it is the organization's (the caller's shortlist may say otherwise).
        candidates = [
            c for c in shortlist.ready if not pinned or (c.instance_id == pinned and c.organization_id == org)
        ]
        sticky_id = snapshot.sticky_instance_id
        sticky = projection.instances.get(sticky_id) if sticky_id else None
        target_phone = intent.target.value if intent.target.kind is TargetKind.PHONE else ""
        if (
            not pinned
            and sticky is not None
            and sticky.organization_id == org
            and intent.purpose in sticky.purposes
            and all(c.instance_id != sticky.instance_id for c in candidates)
        ):
            candidates.append(sticky)
        verdicts: dict[str, CandidateVerdict] = {}
        ranked: list[RankedCandidate] = []
        for instance in candidates:
            ctx = context_for(
                instance,
                purpose=intent.purpose,
                type=intent.type,
                usage=snapshot.usage(instance.instance_id),
                policies=self.policies,
                pause=projection.instance_pause(instance.instance_id, org, now),
                now=now,
                target_phone=target_phone,
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
                ranked.append(RankedCandidate(instance, score, ctx.caps))
            verdicts[instance.instance_id] = CandidateVerdict(
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
        for parked in () if pinned else shortlist.parked:
            if parked.state.instance_id in verdicts:
                continue
            verdicts[parked.state.instance_id] = CandidateVerdict(
                instance_id=parked.state.instance_id,
                verdict=Verdict.RECOVERABLE,
                reason=parked.reason,
                retry_at=parked.until,
                reputation_score=parked.state.effective_score(self.policies),
                health=parked.state.effective_health(),
                phase=parked.state.effective_phase(self.policies),
            )
        # Stable sort: equal scores keep the index's least-recently-chosen order.
        ranked.sort(key=lambda r: -r.score)
        return DecisionPlan(
            intent=intent,
            now=now,
            attempt=attempt,
            verdicts=tuple(verdicts.values()),
            ranked=tuple(ranked),
            excluded={} if pinned else shortlist.excluded,
        )

    def _settle_for_every_candidate(
        self, intent: MessageIntent, now: datetime, projection: GateProjection, snapshot: RateSnapshot
    ) -> Settlement | None:
        """Plan limit, kill-switch on the organization or the campaign, per-contact protection: what no
        choice of instance changes."""
        org = intent.organization_id
        plan = projection.plan(org)
        if plan is not None and (
            (plan.daily_cap and snapshot.org_day >= plan.daily_cap)
            or (plan.monthly_cap and snapshot.org_month >= plan.monthly_cap)
        ):
            return Settlement(DecisionOutcome.BLOCKED, DecisionReason.PLAN_LIMIT)
        if projection.paused_scope(org, intent.campaign_id, now) is not None:
            return Settlement(DecisionOutcome.BLOCKED, DecisionReason.OPS_PAUSED)
        contact = self.policies.contact
        last = snapshot.contact_last_sent_at
        if last is not None and contact.min_gap and now < last + contact.min_gap:
            return Settlement(
                DecisionOutcome.QUEUED, DecisionReason.CONTACT_MIN_INTERVAL, last + contact.min_gap
            )
        if contact.per_hour and snapshot.contact_hour >= contact.per_hour:
            return Settlement(DecisionOutcome.QUEUED, DecisionReason.CONTACT_RATE_LIMIT, next_hour(now))
        return None

    def reservation(
        self, plan: DecisionPlan, candidate: RankedCandidate, projection: GateProjection
    ) -> Reservation:
        """The slot to take on `candidate`: its windows, the contact's protection and the plan's caps."""
        intent = plan.intent
        limits = projection.plan(intent.organization_id)
        return Reservation(
            organization_id=intent.organization_id,
            target=intent.target.value,
            instance_id=candidate.instance.instance_id,
            now=plan.now,
            caps=candidate.caps,
            contact_min_gap=self.policies.contact.min_gap,
            contact_per_hour=self.policies.contact.per_hour,
            plan_daily_cap=limits.daily_cap if limits else 0,
            plan_monthly_cap=limits.monthly_cap if limits else 0,
        )

    def conclude(
        self,
        plan: DecisionPlan,
        *,
        chosen: str | None = None,
        refused: Sequence[tuple[str, ReservationResult]] = (),
    ) -> DecisionRecord:
        """The record of the decision: the plan, the candidate whose slot was taken (if any) and the
        reservations the rate store refused, in the order they were tried."""
        verdicts = plan.verdicts
        settled = plan.settled
        if refused:
            verdicts = _with_refusals(verdicts, refused)
            last = refused[-1][1]
            if last.reason is DecisionReason.PLAN_LIMIT:
                settled = Settlement(DecisionOutcome.BLOCKED, DecisionReason.PLAN_LIMIT)
            elif last.reason in _CONTACT:
                settled = Settlement(DecisionOutcome.QUEUED, last.reason, last.retry_at)
        if settled is None:
            settled = (
                Settlement(DecisionOutcome.APPROVED, None)
                if chosen is not None
                else self._from_candidates(plan, verdicts)
            )
        outcome, reason, until = settled
        if outcome is DecisionOutcome.QUEUED and until is not None and until >= plan.intent.expires_at:
            # It could not go before its validity ends: dropped now rather than queued in vain.
            outcome, reason, until = DecisionOutcome.DROPPED, DecisionReason.EXPIRED, None
        return DecisionRecord(
            intent_id=plan.intent.id,
            outcome=outcome,
            reason=reason,
            decided_at=plan.now,
            attempt=plan.attempt,
            chosen_instance_id=chosen if outcome is DecisionOutcome.APPROVED else None,
            queued_until=until,
            candidates=verdicts,
            excluded=dict(plan.excluded),
            pinned_instance_id=plan.intent.pinned_instance_id,
        )

    def _from_candidates(self, plan: DecisionPlan, verdicts: tuple[CandidateVerdict, ...]) -> Settlement:
        waits = [(v.retry_at, v.reason) for v in verdicts if v.verdict is Verdict.RECOVERABLE and v.retry_at]
        if waits:
            retry_at, reason = min(waits, key=itemgetter(0))
            return Settlement(DecisionOutcome.QUEUED, reason, retry_at)
        wait = self.grace.wait_until(
            created_at=plan.intent.created_at,
            now=plan.now,
            candidates=len(verdicts),
            excluded=sum(plan.excluded.values()),
        )
        if wait is not None:
            return Settlement(DecisionOutcome.QUEUED, DecisionReason.NO_ELIGIBLE_INSTANCE, wait)
        return Settlement(DecisionOutcome.BLOCKED, _dominant_reason(verdicts, plan.excluded))


_CONTACT = (DecisionReason.CONTACT_MIN_INTERVAL, DecisionReason.CONTACT_RATE_LIMIT)


def _with_refusals(
    verdicts: tuple[CandidateVerdict, ...], refused: Sequence[tuple[str, ReservationResult]]
) -> tuple[CandidateVerdict, ...]:
    """The rate store found these windows full after all (a concurrent decision took the slot)."""
    by_instance = dict(refused)
    return tuple(
        replace(v, verdict=Verdict.RECOVERABLE, reason=result.reason, retry_at=result.retry_at, score=0.0)
        if (result := by_instance.get(v.instance_id)) is not None and not result.concerns_every_candidate
        else v
        for v in verdicts
    )


def _dominant_reason(
    verdicts: tuple[CandidateVerdict, ...], excluded: Mapping[DecisionReason, int]
) -> DecisionReason:
    counts: Counter[DecisionReason] = Counter(excluded)
    counts.update(v.reason for v in verdicts if v.verdict is Verdict.FINAL and v.reason)
    if not counts:
        return DecisionReason.NO_ELIGIBLE_INSTANCE
    return max(counts, key=lambda r: (counts[r], -SEVERITY.index(r) if r in SEVERITY else -99))


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
