"""Bulk SMS to a saved view or a filter: one outbox message per client, spaced by the
rate, so the limit holds across restarts and workers; progress is counted from the
outbox itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from crm_api.accounts.models import User
from crm_api.clients import phones
from crm_api.clients.list_models import SavedView
from crm_api.clients.models import Client
from crm_api.clients.service import filtered
from crm_api.clients.types import ClientFilters
from crm_api.messages import notifier
from crm_api.messages.models import BulkSend, OutboxMessage
from crm_api.messages.outbox import FINAL as FINAL_STATES
from crm_api.messages.outbox import enqueue
from crm_api.messages.sms.deals import deal_fields_for
from crm_api.messages.templates import fits_sms, render
from crm_api.platform.db.base import utcnow
from crm_api.platform.errors import InvalidInput, NotFound
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.realtime.outage import Outage, is_outage

MAX_RECIPIENTS = 50_000
FAILED = ("failed", "rejected", "expired")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Report:
    total: int
    pending: int
    sent: int  # reached the SMSC
    delivered: int
    failed: int

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "pending": self.pending,
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": self.failed,
        }


async def create_bulk(
    session: AsyncSession,
    user: User,
    *,
    text: str,
    view_id: int | None,
    filters: ClientFilters | None,
    rate: float,
    region: str,
) -> BulkSend:
    if view_id is not None:
        view = await session.get(SavedView, view_id)
        if view is None or view.user_id != user.id:
            raise NotFound(f"saved view {view_id} not found")
        filters = ClientFilters.model_validate(view.filters)
    if filters is None:
        raise InvalidInput("view_id", "give a saved view or a filter")
    query = (
        filtered(user, filters, region)
        .options(selectinload(Client.phones), selectinload(Client.manager))
        .order_by(Client.id)
        .limit(MAX_RECIPIENTS + 1)
    )
    clients = list((await session.scalars(query)).all())
    if len(clients) > MAX_RECIPIENTS:
        raise InvalidInput("filters", f"more than {MAX_RECIPIENTS} recipients: narrow the filter")
    bulk = BulkSend(
        user_id=user.id,
        channel="sms",
        body=text,
        view_id=view_id,
        filters=filters.model_dump(mode="json", exclude_none=True),
        rate=rate,
        status="running",
        total=0,
        skipped=[],
    )
    session.add(bulk)
    await session.flush()
    deals = await deal_fields_for(session, [c.id for c in clients])
    now = utcnow()
    skipped: list[dict[str, Any]] = []
    queued = 0
    for client in clients:
        phone = next((p.e164 for p in client.phones if phones.is_mobile(p.e164)), None)
        if client.sms_opted_out:
            skipped.append({"client_id": client.id, "reason": "opted_out"})
            continue
        if phone is None:
            skipped.append({"client_id": client.id, "reason": "no_mobile_phone"})
            continue
        body = render(text, client, deals.get(client.id))
        if not fits_sms(body):
            skipped.append({"client_id": client.id, "reason": "too_long"})
            continue
        message, _ = await enqueue(
            session,
            channel="sms",
            client=client,
            user=user,
            to_address=phone,
            body=body,
            bulk_id=bulk.id,
        )
        # The rate limit is the schedule itself: message n is due n/rate seconds later.
        message.next_attempt_at = now + timedelta(seconds=queued / rate)
        queued += 1
    bulk.total = queued
    bulk.skipped = skipped
    if queued == 0:
        bulk.status = "done"
        bulk.finished_at = now
    return bulk


async def report(session: AsyncSession, bulk_id: int) -> Report:
    row = (
        await session.execute(
            select(
                func.count(),
                func.sum(case((OutboxMessage.status == "delivered", 1), else_=0)),
                func.sum(case((OutboxMessage.status.in_(FAILED), 1), else_=0)),
                func.sum(case((OutboxMessage.submitted_at.is_not(None), 1), else_=0)),
                func.sum(case((OutboxMessage.status.not_in(FINAL_STATES), 1), else_=0)),
            ).where(OutboxMessage.bulk_id == bulk_id)
        )
    ).one()
    total, delivered, failed, sent, pending = (int(v or 0) for v in row)
    return Report(total=total, pending=pending, sent=sent, delivered=delivered, failed=failed)


class ProgressNotifier:
    """At most one `sms.bulk.progress` frame per bulk per `every` seconds; when nothing
    is pending the bulk is marked done and `sms.bulk.done` goes out."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], hub: Hub, every: float = 1.0
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.every = every
        self._last: dict[int, float] = {}
        self._scheduled: dict[int, asyncio.Task[None]] = {}
        self._finished: set[int] = set()
        self._outage = Outage("bulk SMS progress", log)

    async def changed(self, bulk_id: int) -> None:
        if bulk_id in self._scheduled:
            return
        wait = max(0.0, self._last.get(bulk_id, 0.0) + self.every - time.monotonic())
        self._scheduled[bulk_id] = asyncio.create_task(self._later(bulk_id, wait))

    async def _later(self, bulk_id: int, wait: float) -> None:
        """Publishes once the wait is over; through a database outage, when it is back (the
        last change of a bulk may come during one, and nothing else would mark it done)."""
        try:
            await asyncio.sleep(wait)
            while True:
                self._last[bulk_id] = time.monotonic()
                try:
                    await self.publish(bulk_id)
                except Exception as exc:
                    self._outage.failed_or_bug(exc, f"bulk SMS #{bulk_id}: progress failed")
                    if not is_outage(exc):
                        return
                    await asyncio.sleep(self.every)
                    continue
                self._outage.ok()
                return
        finally:
            self._scheduled.pop(bulk_id, None)

    async def publish(self, bulk_id: int) -> None:
        async with self.sessions() as session:
            bulk = await session.get(BulkSend, bulk_id)
            if bulk is None:
                return
            counts = await report(session, bulk_id)
            if counts.pending == 0 and bulk.status != "done":
                bulk.status = "done"
                bulk.finished_at = utcnow()
                await session.commit()
                self._finished.add(bulk_id)  # until `sms.bulk.done` went out
            progress = notifier.BulkProgress(
                bulk_id=bulk_id, status=bulk.status, **counts.as_dict()
            )
        done = bulk_id in self._finished
        await notifier.bulk_progress(self.hub, progress, bulk.user_id, done=done)
        self._finished.discard(bulk_id)

    async def close(self) -> None:
        for task in list(self._scheduled.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
