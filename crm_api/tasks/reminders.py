"""The reminder scheduler, a Feature beside the API: every poll it claims the reminders
that fell due (atomically in the database, so several workers send each one once) and
pushes `task.due` to the assignee; now and then it runs the stale-deal rule.

Reminders live in the database, so the ones that fell due while every worker was down
go out at the first poll after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.platform.db.base import utcnow
from crm_api.platform.db.direct import connect_direct
from crm_api.platform.deps import Services
from crm_api.platform.realtime.outage import Outage
from crm_api.tasks import notifier
from crm_api.tasks import service as tasks_domain

log = logging.getLogger(__name__)


async def send_due(services: Services, now: datetime | None = None) -> int:
    """One poll: claim, commit, then push (a frame never reports an uncommitted claim). On
    PostgreSQL the claim is one statement on a pooled connection, committed on its own: no
    session, no BEGIN and COMMIT, every second in every worker."""
    async with connect_direct(services.engine, services.sessions) as db:
        due = await tasks_domain.claim_due(db, now or utcnow())
        if isinstance(db, AsyncSession):
            await db.commit()
    for reminder in due:
        await notifier.task_due(services.hub, reminder)
    return len(due)


async def run_stale_rule(services: Services, now: datetime | None = None) -> int:
    async with services.sessions() as session:
        made = await tasks_domain.stale_deal_tasks(
            session, now or utcnow(), services.settings.stale_deal_days
        )
        await session.commit()
    return made


async def start_reminders(services: Services) -> Callable[[], Awaitable[None]]:
    settings = services.settings
    stop = asyncio.Event()

    async def loop() -> None:
        next_scan = 0.0
        database = Outage("reminders: the database", log)
        while not stop.is_set():
            try:
                await send_due(services)
                if time.monotonic() >= next_scan:
                    await run_stale_rule(services)
                    next_scan = time.monotonic() + settings.stale_deal_scan_seconds
                database.ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                database.failed_or_bug(exc, "reminder poll failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.reminder_poll_seconds)

    task = asyncio.create_task(loop(), name="reminders")

    async def shutdown() -> None:
        stop.set()
        try:
            await asyncio.wait_for(task, 5)
        except TimeoutError:
            task.cancel()

    return shutdown
