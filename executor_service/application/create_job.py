"""Turn an approved intent into its execution job, exactly once per intent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from executor_service.application.ports import CapabilitiesOf, profile_of
from executor_service.domain.instance import InstanceProfile
from executor_service.domain.job import MessageExecutionJob
from executor_service.domain.message import OutboundMessage
from executor_service.domain.ports import ExecutorUnitOfWork
from libs.providers.port import new_client_message_id
from libs.seedwork.clock import Clock
from libs.seedwork.shared_kernel import Provider


@dataclass(frozen=True, kw_only=True)
class CreateExecutionJob:
    intent_id: str
    organization_id: str
    instance_id: str
    provider: Provider
    provider_instance_ref: str
    campaign_id: str
    message: OutboundMessage
    not_before: datetime | None
    expires_at: datetime | None


class CreateExecutionJobHandler:
    """Creates the PENDING job of an approved intent inside the caller's transaction (the event consumer's,
    whose inbox already drops redeliveries). An intent that already has a job gets nothing new: the unique
    intent id backs this up against a concurrent creation.

    The job carries a client message id (ours, derived from the intent) only where the capability table
    says the instance's provider keeps it for the message's type: chosen once, here, so every attempt and
    every lookup uses the same one."""

    def __init__(self, capabilities: CapabilitiesOf, clock: Clock) -> None:
        self._capabilities = capabilities
        self._clock = clock

    async def __call__(
        self, uow: ExecutorUnitOfWork, command: CreateExecutionJob
    ) -> MessageExecutionJob | None:
        if await uow.jobs.intent_has_job(command.intent_id):
            return None
        instances = await uow.instances.get_many([command.instance_id])
        return self._add(uow, command, instances.get(command.instance_id))

    async def create_many(
        self, uow: ExecutorUnitOfWork, commands: Sequence[CreateExecutionJob]
    ) -> list[MessageExecutionJob]:
        """The same for a batch of approvals, with one existence query for all of them."""
        taken = await uow.jobs.intents_with_jobs([command.intent_id for command in commands])
        instances = await uow.instances.get_many(sorted({command.instance_id for command in commands}))
        created = []
        for command in commands:
            if command.intent_id not in taken:
                taken.add(command.intent_id)
                created.append(self._add(uow, command, instances.get(command.instance_id)))
        return created

    def _client_message_id(self, command: CreateExecutionJob, instance: InstanceProfile | None) -> str | None:
        capabilities = self._capabilities(profile_of(instance, command.provider))
        if not capabilities.keeps_client_id(command.message.type):
            return None
        return new_client_message_id(command.intent_id)

    def _add(
        self, uow: ExecutorUnitOfWork, command: CreateExecutionJob, instance: InstanceProfile | None
    ) -> MessageExecutionJob:
        job = MessageExecutionJob.create(
            intent_id=command.intent_id,
            organization_id=command.organization_id,
            instance_id=command.instance_id,
            provider=command.provider,
            provider_instance_ref=command.provider_instance_ref,
            campaign_id=command.campaign_id,
            message=command.message,
            client_message_id=self._client_message_id(command, instance),
            not_before=command.not_before,
            expires_at=command.expires_at,
            now=self._clock.now(),
        )
        uow.jobs.add(job)
        uow.track(job)
        return job
