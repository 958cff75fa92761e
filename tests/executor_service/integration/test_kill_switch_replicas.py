"""Every Executor replica stops at a pause, not only the one its ops-event consumer delivered the pause to:
each hears ops' changes on the bus and applies them to its view at once, long before its next re-read of
the projection (a minute apart here, so only what it heard can explain what it answers)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from executor_service.bootstrap import assemble
from libs.provider_simulator import run_simulator
from libs.seedwork.ids import new_id
from libs.testing.jetstream import publish
from libs.testing.waiting import eventually
from tests.executor_service.integration.harness import (
    API_KEY,
    control_changed,
    own_streams,
    running,
    settings,
)


async def test_a_replica_that_did_not_consume_a_pause_holds_at_once_and_lets_go_at_the_resume(
    migrated_database, jetstream, subject_root
) -> None:
    organization = f"org-{new_id()[-12:]}"
    async with own_streams(jetstream, subject_root) as root, run_simulator(api_key=API_KEY) as simulator:
        database = migrated_database("executor_service")
        # The replica that consumes ops' events (and stores the projection)...
        async with running(settings(database, root, simulator.base_url)):
            # ...and another that only hears them: its view of the projection is re-read once a minute.
            other = await assemble(
                settings(database, root, simulator.base_url, kill_switch_refresh_seconds=60.0)
            )
            stop = asyncio.Event()
            hearing = asyncio.create_task(other.heard_controls.run(stop))
            try:
                await asyncio.sleep(0.1)
                await other.infra.nats.flush()  # subscribed

                async def held() -> bool:
                    hold = await other.kill_switch.hold_for(
                        organization_id=organization,
                        instance_id="inst-1",
                        campaign_id="",
                        now=datetime.now(UTC),
                    )
                    return hold is not None

                assert not await held()  # its view is read now: the next read is a minute away

                await publish(jetstream, root, control_changed(organization, paused=True, version=1))
                await eventually(held, timeout=5)

                await publish(jetstream, root, control_changed(organization, paused=False, version=2))
                await eventually(lambda: not_(held), timeout=5)

                # The pause delivered again (a re-sent event): older than the resume, it holds nothing.
                await publish(jetstream, root, control_changed(organization, paused=True, version=1))
                await asyncio.sleep(0.3)
                assert not await held()
            finally:
                stop.set()
                await hearing
                await other.close()


async def not_(check) -> bool:
    return not await check()
