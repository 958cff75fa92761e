"""The Gate's decision as a span of the call or event that asked for it (`gate decide`): its outcome,
reason and chosen instance, so a trace shows why a message went where it went (libs.tracing)."""

from __future__ import annotations

from gate_service.application.decide import Decision, DecisionService
from gate_service.domain.intent import MessageIntent
from libs import tracing


class TracedDecisionService(DecisionService):
    async def decide(self, intent: MessageIntent) -> Decision:
        if not tracing.enabled():
            return await super().decide(intent)
        attributes = {"whatlead.intent_id": intent.id, "whatlead.organization_id": intent.organization_id}
        # Inside a call's or an event's trace only: a timer's re-decision starts none.
        with tracing.span("gate decide", attributes=attributes, only_in_trace=True) as current:
            decision = await super().decide(intent)
            if current is not None:
                record = decision.record
                current.set_attribute("whatlead.decision.outcome", record.outcome.value)
                reason = record.reason.value if record.reason else "none"
                current.set_attribute("whatlead.decision.reason", reason)
                if record.chosen_instance_id:
                    current.set_attribute("whatlead.instance_id", record.chosen_instance_id)
            return decision
