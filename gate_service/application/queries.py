"""Read use cases: every read is scoped to one organization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gate_service.domain.intent import MessageIntent
from gate_service.domain.ports import GateUnitOfWork, IntentFilter
from libs.seedwork.errors import InvalidArgument, NotFound, Reason
from libs.seedwork.ids import is_valid_id
from libs.seedwork.organizations import require_organization
from libs.seedwork.pagination import Page, PageRequest


def require_intent_id(intent_id: str) -> None:
    if not is_valid_id(intent_id):
        raise InvalidArgument.of("intent_id", "must be an intent id")


@dataclass(frozen=True)
class GetIntent:
    organization_id: str
    intent_id: str


@dataclass(frozen=True)
class ListIntents:
    organization_id: str
    page: PageRequest
    where: IntentFilter


class GetIntentHandler:
    def __init__(self, uow: Callable[[], GateUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: GetIntent) -> MessageIntent:
        """The intent with its latest decision record; NotFound for another organization's intent."""
        require_organization(query.organization_id)
        require_intent_id(query.intent_id)
        async with self._uow() as uow:
            intent = await uow.intents.get(query.organization_id, query.intent_id)
        if intent is None:
            raise NotFound(
                f"intent {query.intent_id} not found",
                reason=Reason.INTENT_NOT_FOUND,
                metadata={"intent_id": query.intent_id},
            )
        return intent


class ListIntentsHandler:
    def __init__(self, uow: Callable[[], GateUnitOfWork]) -> None:
        self._uow = uow

    async def __call__(self, query: ListIntents) -> Page[MessageIntent]:
        """One page of the organization's intents, oldest first, filters combined with AND."""
        require_organization(query.organization_id)
        where, page = query.where, query.page
        if where.created_after and where.created_before and where.created_after >= where.created_before:
            raise InvalidArgument.of("created_before", "must be after created_after")
        async with self._uow() as uow:
            intents = await uow.intents.list(
                query.organization_id, after_id=page.after_id, limit=page.size, where=where
            )
        return Page.of(intents, page, id_of=lambda intent: intent.id)
