"""The SMS worker: outbox → SMSC, and SMSC → database → browsers.

Sending: due messages are claimed in batches, no more than the gateway can place before
their deadline at the rate the SMSC takes; the claim is renewed while the message is in
this worker's hands (so the outbox never gives it to a second sender) and lapses only
when the worker is gone. A part the gateway could not write before the deadline comes
back not sent and the message is queued again. Results are written in batches; one
result the database refuses does not hold up the others. Overdue receipts are asked for
with query_sm; a part with no final answer by the receipt deadline ends "expired".

Receiving: receipts and received texts are written in one transaction per batch and
acknowledged to the SMSC only after the commit, so a crash makes the SMSC deliver them
again. A receipt no part has the id of yet waits unanswered a moment for its submit
result; then it is written down as kept (in its batch's transaction) and answered, and
matched again until a part takes it. Frames are published after each commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.clients.models import Client
from crm_api.clients.timeline.models import Communication
from crm_api.messages import notifier
from crm_api.messages.models import OutboxMessage
from crm_api.messages.outbox import CLAIM_FOR, claim_due_rows, renew_claims
from crm_api.messages.sms import bulk as bulk_sends
from crm_api.messages.sms import kept
from crm_api.messages.sms.delivery import (
    UNCERTAIN_HOLD,
    Change,
    apply_receipts,
    hold_uncertain,
    overdue_parts,
    placed_indexes,
    record_first_submits,
    record_late_send,
    record_send,
    recover_abandoned,
    touch_parts,
)
from crm_api.messages.sms.inbound import Received, inbound_key, receive
from crm_api.platform.db.base import utcnow
from crm_api.platform.heap import startup_heap_frozen
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.realtime.outage import Outage, is_outage
from sms_gateway import Incoming, OutgoingSms, SendResult, SmsGateway
from sms_gateway.receipts import receipt_of_state
from sms_gateway.types import DeliveryReceipt, InboundSms

log = logging.getLogger(__name__)
# A receipt can outrun the commit of its own submit: it waits this long unanswered, then
# it is kept in the database and answered (an SMSC stalls when its receipts go
# unanswered), and matched again every second (KEPT_BATCH at a time) for KEPT_TTL.
UNKNOWN_RECEIPT_GRACE = 2.0
KEPT_TTL = timedelta(minutes=10)
KEPT_BATCH = 5_000
RESULT_LINGER = 0.05  # seconds submit results are left to the receive loop
RECEIPT_OVERDUE = timedelta(minutes=10)  # no receipt this long after the submit: query_sm
RECEIPT_DEADLINE = timedelta(hours=72)  # still no final state: the part ends "expired"


@dataclass(slots=True)
class _Waiting:
    incoming: Incoming
    since: float


class SmsService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hub: Hub,
        gateway: SmsGateway,
        *,
        region: str,
        max_in_flight: int = 200,
        poll: float = 0.5,
        claim_for: timedelta = CLAIM_FOR,
        receipt_overdue: timedelta = RECEIPT_OVERDUE,
        receipt_deadline: timedelta = RECEIPT_DEADLINE,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.gateway = gateway
        self.region = region
        self.max_in_flight = max_in_flight
        self.poll = poll
        self.wake = asyncio.Event()  # set by a sender in this process: no need to wait a poll
        self._results: asyncio.Queue[tuple[int, SendResult]] = asyncio.Queue()
        self._result_added = asyncio.Event()
        self._receiving = False  # the receive loop is writing (or waiting to)
        self._received_at = -math.inf  # when it last finished
        self._in_flight = 0
        self._sending: set[asyncio.Task[None]] = set()
        self._waiting: list[_Waiting] = []
        # Receipts may be kept (a worker that died may have left some): looked for now.
        self._kept = True
        self._kept_tried = 0.0
        self._progress = bulk_sends.ProgressNotifier(sessions, hub)
        # Results, receipts and claim renewals touch the same rows: written one transaction
        # at a time, they never wait on each other's row locks (or deadlock on PostgreSQL).
        self._write_lock = asyncio.Lock()
        # Every loop here needs the database: an outage is one line when it begins and one
        # when it ends, whichever loops retry meanwhile; anything else logs its traceback.
        self._database = Outage("SMS worker: the database", log)
        self._rebound = False
        self._bound = gateway.connected
        self.uncertain_hold = UNCERTAIN_HOLD
        self.claim_for = claim_for
        # A part not written within half the claim goes back: the claim, renewed every
        # quarter, never runs out under a message this worker still holds.
        self.send_within = claim_for.total_seconds() / 2
        self._held: set[int] = set()  # claimed here, result not yet written
        self._renewed = 0.0
        self._recovered = -math.inf
        self.receipt_overdue = receipt_overdue
        self.receipt_deadline = receipt_deadline
        gateway.state_listeners.append(self._on_link)

    def _on_link(self, bound: bool, _error: str | None) -> None:
        # The loop's own view of the link, in event order: the gateway's flag flips in its
        # thread before this runs, and claiming on it would skip the hold below.
        self._bound = bound
        if bound:
            self._rebound = True
            self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        # At the SMSC's rate, full collections walking the startup heap were ~12% of the CPU.
        with startup_heap_frozen():
            await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self._claim_loop(stop), name="sms-claim"),
            asyncio.create_task(self._result_loop(stop), name="sms-results"),
            asyncio.create_task(self._receive_loop(stop), name="sms-receive"),
            asyncio.create_task(self._overdue_loop(stop), name="sms-overdue"),
        ]
        await stop.wait()
        # Let sends in progress finish and be written before the process goes.
        if self._sending:
            await asyncio.wait(self._sending, timeout=10)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._results.join(), 5)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- sending ------------------------------------------------------------------------

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = self.max_in_flight - self._in_flight
            if self._rebound and self._bound:
                self._rebound = False
                began = time.monotonic()
                try:
                    async with self.sessions() as session:
                        await hold_uncertain(session, utcnow(), self.uncertain_hold)
                        await session.commit()
                    self._database.ok(began)
                except Exception as exc:
                    self._database.failed_or_bug(exc, "holding uncertain SMS failed")
            await self._renew_claims()
            rate = self.gateway.rate
            if rate is not None:
                # The SMSC takes `rate` a second: claim what it can take before the deadline.
                free = min(free, max(1, int(rate * self.send_within / 2)) - self._in_flight)
            if not self._bound or free <= 0:
                await self._nap(0.05 if free <= 0 else self.poll)
                continue
            began = time.monotonic()
            try:
                batch = await self._claim(free)
                self._database.ok(began)
            except Exception as exc:
                self._database.failed_or_bug(exc, "claiming SMS failed")
                await self._nap(self.poll)
                continue
            if not batch:
                await self._nap(self.poll)
                continue
            for message_id, outgoing, skip in batch:
                self._in_flight += 1
                self._held.add(message_id)
                task = asyncio.create_task(self._send(message_id, outgoing, skip))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _renew_claims(self) -> None:
        now = time.monotonic()
        if not self._held or now - self._renewed < self.claim_for.total_seconds() / 4:
            return
        self._renewed = now
        try:
            async with self._write_lock, self.sessions() as session:
                await renew_claims(session, self._held, utcnow(), self.claim_for)
                await session.commit()
            self._database.ok(now)
        except Exception as exc:
            self._database.failed_or_bug(exc, "renewing the claims on SMS being sent failed")

    async def _nap(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
        self.wake.clear()

    async def _claim(self, limit: int) -> list[tuple[int, OutgoingSms, set[int]]]:
        async with self.sessions() as session:
            now = utcnow()
            # A lapsed claim means its worker is gone: checked a few times per claim period.
            if time.monotonic() - self._recovered >= self.claim_for.total_seconds() / 4:
                self._recovered = time.monotonic()
                if await recover_abandoned(session, now, self.uncertain_hold):
                    await session.commit()
                    # Their receipts may be kept already: match them before the hold ends.
                    self._kept = True
                    self._kept_tried = 0.0
            rows = await claim_due_rows(
                session,
                "sms",
                now,
                limit,
                (
                    OutboxMessage.id,
                    OutboxMessage.to_address,
                    OutboxMessage.body,
                    OutboxMessage.parts,
                ),
                claim_for=self.claim_for,
                reclaim_expired=False,
            )
            return [
                (
                    r.id,
                    OutgoingSms(destination=r.to_address, text=r.body, reference=r.id & 0xFF),
                    placed_indexes(r.parts),
                )
                for r in sorted(rows, key=lambda r: int(r.id))
            ]

    async def _send(self, message_id: int, outgoing: OutgoingSms, skip: set[int]) -> None:
        try:
            result = await self.gateway.send(outgoing, skip=skip, within=self.send_within)
        except Exception as e:  # a bug, not the SMSC: retry later rather than lose it
            log.exception("sending SMS %s failed", message_id)
            result = SendResult("retry", error=f"internal error: {e}")
        self._results.put_nowait((message_id, result))
        self._result_added.set()

    async def _result_loop(self, stop: asyncio.Event) -> None:
        """Writes the results the receive loop does not: while receipts flow, it takes
        them into its own transactions (one commit for both, and no receipt waits
        behind a transaction of results to be answered)."""
        while True:
            await self._result_added.wait()
            await asyncio.sleep(RESULT_LINGER)
            if self._results.empty():
                self._result_added.clear()
                continue
            if self._receiving or time.monotonic() - self._received_at < RESULT_LINGER:
                continue  # the receive loop is at work: it takes them next
            batch = self._take_results(500)
            changes = await self._write_with_retries(batch)
            self._results_written(batch)
            await self._publish_changes(changes)

    def _take_results(self, limit: int) -> list[tuple[int, SendResult]]:
        batch: list[tuple[int, SendResult]] = []
        while not self._results.empty() and len(batch) < limit:
            batch.append(self._results.get_nowait())
        return batch

    def _results_written(self, batch: list[tuple[int, SendResult]]) -> None:
        for message_id, _ in batch:
            self._held.discard(message_id)
        self._in_flight -= len(batch)
        self.wake.set()
        for _ in batch:
            self._results.task_done()

    async def _write_with_retries(self, batch: list[tuple[int, SendResult]]) -> list[Change]:
        refused = 0  # an outage is waited out; a batch the database refuses is given up
        while refused < 5:
            began = time.monotonic()
            try:
                changes = await self._write_results(batch)
                self._database.ok(began)
                return changes
            except Exception as exc:
                self._database.failed_or_bug(exc, "writing SMS results failed")
                refused += not is_outage(exc)
                await asyncio.sleep(0.5 * (refused + 1))
        if len(batch) == 1:
            # Its claim lapses: the message then waits for its receipts as uncertain.
            log.error("the result of SMS %s could not be written: %s", *batch[0])
            return []
        # One result the database refuses must not cost the others theirs.
        changes = []
        for item in batch:
            changes += await self._write_with_retries([item])
        return changes

    async def _write_results(self, batch: list[tuple[int, SendResult]]) -> list[Change]:
        async with self._write_lock, self.sessions() as session:
            changes = await self._record_results(session, batch)
            await session.commit()
        return changes

    async def _record_results(
        self, session: AsyncSession, batch: list[tuple[int, SendResult]]
    ) -> list[Change]:
        now = utcnow()
        results = dict(batch)
        changes, rest = await record_first_submits(session, results, now)
        if not rest:
            return changes
        messages = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(rest)))
        ).all()
        # One query for the communications, which set_status then finds in the session
        # (held here: the identity map only keeps objects someone references).
        comm_ids = [m.communication_id for m in messages if m.communication_id]
        comms = (
            await session.scalars(select(Communication).where(Communication.id.in_(comm_ids)))
        ).all()
        for message in messages:
            result = results[message.id]
            if message.status == "uncertain":  # our claim lapsed: recovered meanwhile
                change = await record_late_send(session, message, result, now)
            elif message.status == "sending":
                change = await record_send(session, message, result, now, hold=self.uncertain_hold)
            else:
                continue  # settled meanwhile (a receipt adopted)
            if change is not None:
                changes.append(change)
        del comms
        return changes

    # -- receiving ----------------------------------------------------------------------

    async def _receive_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            items = await self.gateway.batch(max_items=500, wait=0.5)
            now = time.monotonic()
            retry = [w for w in self._waiting if now - w.since >= 0.2]
            self._waiting = [w for w in self._waiting if now - w.since < 0.2]
            if self._kept and now - self._kept_tried >= 1.0:
                self._kept_tried = now
                await self._retry_kept(now)
            if not items and not retry:
                continue
            fresh = [_Waiting(i, now) for i in items]
            self._receiving = True
            try:
                unknown, received, changes = await self._write_incoming(fresh + retry, now)
                self._database.ok(now)
            except Exception as exc:
                self._database.failed_or_bug(
                    exc, "storing received SMS/receipts failed; the SMSC will resend"
                )
                for w in fresh + retry:
                    self.gateway.ack(w.incoming, ok=False)
                await asyncio.sleep(0.5)
                continue
            finally:
                self._receiving = False
                self._received_at = time.monotonic()
            for w in fresh + retry:
                if id(w) in unknown:
                    self._waiting.append(w)
                else:
                    self.gateway.ack(w.incoming)
            await self._publish_changes(changes)
            for r in received:
                if not r.again:
                    await notifier.sms_received(self.hub, r)

    async def _retry_kept(self, now: float) -> None:
        """Matches the kept receipts again: those a part takes are applied and forgotten,
        those older than KEPT_TTL are dropped (said in the log)."""
        try:
            async with self._write_lock, self.sessions() as session:
                at = utcnow()
                pending = await kept.kept(session, KEPT_BATCH)
                receipts = [r for r, _ in pending]
                changes, unknown = await apply_receipts(
                    session, receipts, at, hold=self.uncertain_hold
                )
                expired = [
                    r for r, came in pending if r.message_id in unknown and at - came > KEPT_TTL
                ]
                await kept.forget(
                    session,
                    [r.message_id for r in receipts if r.message_id not in unknown]
                    + [r.message_id for r in expired],
                )
                await session.commit()
            self._database.ok(now)
        except Exception as exc:
            self._database.failed_or_bug(exc, "matching kept SMS receipts failed")
            return
        still = len({r.message_id for r in receipts} & unknown) - len(expired)
        # Rows another worker was matching were skipped: that worker goes on with them.
        self._kept = still > 0 or len(pending) == KEPT_BATCH
        for r in expired:
            log.warning(
                "SMS receipt %s (%s, to %s) dropped: no message took it in %d s",
                r.message_id,
                r.stat,
                r.handset or "?",
                int(KEPT_TTL.total_seconds()),
            )
        await self._publish_changes(changes)

    async def _write_incoming(
        self, items: list[_Waiting], now_mono: float
    ) -> tuple[set[int], list[Received], list[Change]]:
        """Writes a batch; returns the receipts to wait on unanswered (by id() of their
        _Waiting), the texts received and the changes."""
        receipts = [w for w in items if isinstance(w.incoming.item, DeliveryReceipt)]
        texts = [w for w in items if isinstance(w.incoming.item, InboundSms)]
        now = utcnow()
        received: list[Received] = []
        async with self._write_lock:
            # Submit results waiting to be written go first, in the same transaction: the
            # SMSC answers a submit before it sends its receipt, so the receipt finds its
            # part now instead of waiting a round for the result loop.
            results = self._take_results(500)
            try:
                async with self.sessions() as session:
                    changes = await self._record_results(session, results) if results else []
                    only = [
                        i for w in receipts if isinstance(i := w.incoming.item, DeliveryReceipt)
                    ]
                    receipt_changes, unknown_ids = await apply_receipts(
                        session, only, now, hold=self.uncertain_hold
                    )
                    changes += receipt_changes
                    # Unknown past their grace: kept, and answered after this commit.
                    overdue = {
                        id(w): i
                        for w in receipts
                        if now_mono - w.since > UNKNOWN_RECEIPT_GRACE
                        and isinstance(i := w.incoming.item, DeliveryReceipt)
                        and i.message_id in unknown_ids
                    }
                    if overdue:
                        await kept.keep(session, list(overdue.values()), now)
                        self._kept = True
                    for w in texts:
                        sms = w.incoming.item
                        assert isinstance(sms, InboundSms)
                        key = inbound_key(sms)
                        r = await receive(session, sms, region=self.region, now=now, key=key)
                        if r is not None:
                            received.append(r)
                        else:
                            log.warning("a text from a non-phone sender %r dropped", sms.source)
                    await session.commit()
            except BaseException:
                for result in results:  # back to the result loop, with its retries
                    self._results.put_nowait(result)
                    self._results.task_done()
                self._result_added.set()
                raise
        self._results_written(results)
        unknown = {
            id(w)
            for w in receipts
            if isinstance(w.incoming.item, DeliveryReceipt)
            and w.incoming.item.message_id in unknown_ids
            and id(w) not in overdue
        }
        return unknown, received, changes

    # -- overdue receipts ---------------------------------------------------------------

    async def _overdue_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._nap_until(stop, min(60.0, self.receipt_overdue.total_seconds() / 2))
            if not self._bound or stop.is_set():
                continue
            began = time.monotonic()
            try:
                await self.resolve_overdue()
                self._database.ok(began)
            except Exception as exc:
                self._database.failed_or_bug(exc, "resolving overdue SMS receipts failed")

    async def _nap_until(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def resolve_overdue(self) -> int:
        """Asks the SMSC (query_sm) about parts whose receipt is overdue; a final answer
        counts as their receipt, and parts still undecided at the receipt deadline end
        expired. Returns how many parts were settled."""
        now = utcnow()
        async with self.sessions() as session:
            overdue = await overdue_parts(session, now, self.receipt_overdue)
        if not overdue:
            return 0
        answers = await asyncio.gather(*(self.gateway.query(mid) for mid, _ in overdue))
        receipts: list[DeliveryReceipt] = []
        later: list[str] = []
        given_up = 0
        for (mid, submitted_at), (code, state) in zip(overdue, answers, strict=True):
            receipt = receipt_of_state(mid, state) if code == 0 else None
            if receipt is None and submitted_at and now - submitted_at > self.receipt_deadline:
                receipt = DeliveryReceipt(mid, "EXPIRED", "expired", "no delivery receipt")
                given_up += 1
            if receipt is None:
                later.append(mid)
            else:
                receipts.append(receipt)
        async with self._write_lock, self.sessions() as session:
            changes, _ = await apply_receipts(session, receipts, now)
            await touch_parts(session, later, now)
            await session.commit()
        log.info(
            "overdue SMS receipts: %d settled by query_sm, %d expired without one, %d later",
            len(receipts) - given_up,
            given_up,
            len(later),
        )
        await self._publish_changes(changes)
        return len(receipts)

    # -- frames -------------------------------------------------------------------------

    async def _publish_changes(self, changes: Iterable[Change]) -> None:
        changes = list(changes)
        if not changes:
            return
        unknown = {c.message.client_id for c in changes if not c.message.manager_known}
        managers: dict[int, int | None] = {}
        if unknown:
            try:
                managers = await self._managers(unknown)
            except Exception as exc:  # the frames still go, to whoever sent the message
                self._database.failed_or_bug(exc, "reading the managers of SMS clients failed")
        bulks: set[int] = set()
        statuses: list[tuple[Change, int | None]] = []
        for change in changes:
            m = change.message
            if m.bulk_id is not None:
                bulks.add(m.bulk_id)
                continue  # a bulk send reports progress, not thousands of frames
            manager = m.manager_id if m.manager_known else managers.get(m.client_id)
            statuses.append((change, manager))
        if statuses:
            await notifier.sms_statuses(self.hub, statuses)
        for bulk_id in bulks:
            await self._progress.changed(bulk_id)

    async def _managers(self, client_ids: set[int]) -> dict[int, int | None]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Client.id, Client.manager_id).where(Client.id.in_(client_ids))
            )
            return {cid: mid for cid, mid in rows.all()}
