"""What the SMSC said about our messages, written down: submit results (every part's
SMSC message id) and delivery receipts. States only move forward."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.clients.models import Client
from crm_api.clients.timeline.models import Communication
from crm_api.messages.models import OutboxMessage, SmsPart
from crm_api.messages.outbox import FINAL, retry_later, set_status
from sms_gateway.connection import LINK_LOST
from sms_gateway.encoding import make_parts
from sms_gateway.types import DeliveryReceipt, SendResult

MAX_ATTEMPTS = 12  # with the capped backoff: about half an hour of trying
GIVE_UP_AFTER = timedelta(hours=24)
# A part written just before the link died may have reached the SMSC: its receipt is
# awaited this long (after the link is back) before the part is sent again.
UNCERTAIN_HOLD = timedelta(seconds=20)


@dataclass(frozen=True, slots=True)
class MessageState:
    """What the frames about a message need, detached from any session (cheaper than an
    ORM object in the bulk paths)."""

    id: int
    client_id: int
    user_id: int | None
    bulk_id: int | None
    communication_id: int | None
    parts: list[dict[str, Any]]
    last_error: str | None = None
    manager_id: int | None = None  # the client's responsible manager, when known
    manager_known: bool = False

    @classmethod
    def of(cls, m: OutboxMessage) -> MessageState:
        return cls(
            m.id, m.client_id, m.user_id, m.bulk_id, m.communication_id, m.parts, m.last_error
        )


@dataclass(frozen=True, slots=True)
class Change:
    message: MessageState
    status: str


async def record_send(
    session: AsyncSession,
    message: OutboxMessage,
    result: SendResult,
    now: datetime,
    *,
    hold: timedelta = UNCERTAIN_HOLD,
) -> Change | None:
    """The parts the SMSC accepted and where the message stands now; None if it goes back
    to the queue for another attempt."""
    placed = [p for p in result.parts if p.status == 0 and p.message_id]
    lost = [p for p in result.parts if p.status == LINK_LOST]
    redone = {p.index for p in result.parts}
    # Entries of parts sent again in this attempt are replaced by this attempt's answer.
    message.parts = [e for e in message.parts if e["message_id"] or e["index"] not in redone]
    if lost:
        message.parts = [
            *message.parts,
            *({"index": p.index, "message_id": None, "status": "unknown"} for p in lost),
        ]
    if placed:
        for p in placed:
            session.add(
                SmsPart(
                    outbox_id=message.id,
                    part_index=p.index,
                    smsc_message_id=p.message_id,
                    status="submitted",
                    updated_at=now,
                )
            )
        message.parts = [
            *message.parts,
            *(
                {"index": p.index, "message_id": p.message_id, "status": "submitted"}
                for p in placed
            ),
        ]
    if result.outcome == "submitted":
        await set_status(session, message, "submitted")
        return Change(MessageState.of(message), "submitted")
    if result.outcome == "failed":
        await set_status(session, message, "failed", error=result.error)
        return Change(MessageState.of(message), "failed")
    error = result.error or "try again later"
    if lost:
        message.status = "uncertain"
        message.claimed_until = None
        message.last_error = error
        message.next_attempt_at = now + hold
        return None
    if message.attempts >= MAX_ATTEMPTS or now - _aware(message.created_at) > GIVE_UP_AFTER:
        await set_status(session, message, "expired", error=f"gave up: {error}")
        return Change(MessageState.of(message), "expired")
    retry_later(message, error, now)
    return None


async def record_first_submits(
    session: AsyncSession, results: dict[int, SendResult], now: datetime
) -> tuple[list[Change], set[int]]:
    """The common case in bulk statements: a first attempt whose every part the SMSC took.
    Returns the changes and the ids left for `record_send` (anything else)."""
    rows = (
        await session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.status,
                OutboxMessage.parts,
                OutboxMessage.communication_id,
                OutboxMessage.client_id,
                OutboxMessage.user_id,
                OutboxMessage.bulk_id,
                Client.manager_id,
            )
            .join(Client, Client.id == OutboxMessage.client_id)
            .where(OutboxMessage.id.in_(results.keys()))
        )
    ).all()
    fast = [
        r
        for r in rows
        if r.status == "sending" and not r.parts and results[r.id].outcome == "submitted"
    ]
    if not fast:
        return [], set(results)
    part_rows = []
    message_rows = []
    changes = []
    for r in fast:
        entries = [
            {"index": p.index, "message_id": p.message_id, "status": "submitted"}
            for p in results[r.id].parts
        ]
        part_rows += [
            {
                "outbox_id": r.id,
                "part_index": p.index,
                "smsc_message_id": p.message_id,
                "status": "submitted",
                "updated_at": now,
            }
            for p in results[r.id].parts
        ]
        message_rows.append(
            {
                "id": r.id,
                "status": "submitted",
                "claimed_until": None,
                "submitted_at": now,
                "parts": entries,
            }
        )
        # A detached copy carrying what the frames need.
        changes.append(
            Change(
                MessageState(
                    r.id,
                    r.client_id,
                    r.user_id,
                    r.bulk_id,
                    r.communication_id,
                    entries,
                    manager_id=r.manager_id,
                    manager_known=True,
                ),
                "submitted",
            )
        )
    await session.execute(insert(SmsPart), part_rows)
    await session.execute(update(OutboxMessage), message_rows)
    comm_ids = [r.communication_id for r in fast if r.communication_id]
    if comm_ids:
        await session.execute(
            update(Communication)
            .where(Communication.id.in_(comm_ids))
            .values(status="submitted")
            .execution_options(synchronize_session=False)
        )
    return changes, set(results) - {r.id for r in fast}


def placed_indexes(parts: list[dict[str, Any]]) -> set[int]:
    """Parts an earlier attempt already placed (of a message's `parts`): a retry sends only
    the others."""
    return {int(p["index"]) for p in parts if p["message_id"]}


def _aware(value: datetime) -> datetime:
    # SQLite hands naive datetimes back; they were written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def adopt(
    session: AsyncSession, receipts: Sequence[DeliveryReceipt], now: datetime
) -> set[str]:
    """Receipts with ids we never heard of, from numbers an uncertain message went to: the
    SMSC did take those parts before the link died. Each such part gets the receipt's id
    instead of being sent a second time. Returns the ids adopted."""
    by_number: dict[str, list[DeliveryReceipt]] = {}
    for r in receipts:
        digits = "".join(ch for ch in r.handset if ch.isdigit())
        if digits:
            by_number.setdefault("+" + digits, []).append(r)
    if not by_number:
        return set()
    candidates = (
        await session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.channel == "sms",
                OutboxMessage.status.in_(("uncertain", "queued")),
                OutboxMessage.to_address.in_(by_number.keys()),
            )
            .order_by(OutboxMessage.id)
        )
    ).all()
    adopted: set[str] = set()
    for message in candidates:
        waiting = by_number.get(message.to_address, [])
        entries = list(message.parts)
        for slot, entry in enumerate(entries):
            if entry["status"] != "unknown" or not waiting:
                continue
            receipt = waiting.pop(0)
            index = int(entry["index"])
            entries[slot] = {
                "index": index,
                "message_id": receipt.message_id,
                "status": "submitted",
            }
            session.add(
                SmsPart(
                    outbox_id=message.id,
                    part_index=index,
                    smsc_message_id=receipt.message_id,
                    status="submitted",
                    updated_at=now,
                )
            )
            adopted.add(receipt.message_id)
        if entries != message.parts:
            message.parts = entries
            if not any(e["status"] == "unknown" for e in entries):
                await set_status(session, message, "submitted")
    if adopted:
        await session.flush()
    return adopted


async def apply_receipts(
    session: AsyncSession, receipts: Sequence[DeliveryReceipt], now: datetime
) -> tuple[list[Change], set[str]]:
    """Applies a batch of receipts in a few bulk statements; returns the messages whose
    state changed and the receipt ids no part is known for (yet: a receipt can outrun
    our own commit)."""
    ids = {r.message_id for r in receipts}
    part_cols = (SmsPart.id, SmsPart.outbox_id, SmsPart.smsc_message_id, SmsPart.status)
    parts = {
        r.smsc_message_id: r
        for r in (
            await session.execute(select(*part_cols).where(SmsPart.smsc_message_id.in_(ids)))
        ).all()
    }
    unknown = ids - parts.keys()
    if unknown:
        adopted = await adopt(session, [r for r in receipts if r.message_id in unknown], now)
        if adopted:
            unknown -= adopted
            for r in (
                await session.execute(
                    select(*part_cols).where(SmsPart.smsc_message_id.in_(adopted))
                )
            ).all():
                parts[r.smsc_message_id] = r
    new_status: dict[int, str] = {}
    touched: set[int] = set()
    for receipt in receipts:
        part = parts.get(receipt.message_id)
        if part is None or new_status.get(part.id, part.status) in FINAL:
            continue
        new_status[part.id] = receipt.outcome or receipt.stat.lower()
        touched.add(part.outbox_id)
    if not new_status:
        return [], unknown
    await session.execute(
        update(SmsPart),
        [{"id": pid, "status": st, "updated_at": now} for pid, st in new_status.items()],
    )
    by_message: dict[int, list[tuple[int, str, str]]] = {}
    for r in (
        await session.execute(
            select(SmsPart.outbox_id, SmsPart.part_index, SmsPart.smsc_message_id, SmsPart.status)
            .where(SmsPart.outbox_id.in_(touched))
            .order_by(SmsPart.part_index)
        )
    ).all():
        by_message.setdefault(r.outbox_id, []).append((r.part_index, r.smsc_message_id, r.status))
    messages = (
        await session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.status,
                OutboxMessage.parts,
                OutboxMessage.communication_id,
                OutboxMessage.client_id,
                OutboxMessage.user_id,
                OutboxMessage.bulk_id,
                Client.manager_id,
            )
            .join(Client, Client.id == OutboxMessage.client_id)
            .where(OutboxMessage.id.in_(touched))
        )
    ).all()
    changes = []
    updates = []
    comm_status: dict[str, list[int]] = {}
    comm_errors: dict[int, str] = {}
    for m in messages:
        mine = by_message.get(m.id, [])
        status = outcome_of(m.status, [st for _, _, st in mine])
        if status is None or status == m.status:
            continue
        error = next(
            (f"part {i + 1}: {st}" for i, _, st in mine if st in FINAL and st != "delivered"),
            None,
        )
        statuses = {mid: st for _, mid, st in mine}
        entries = [{**e, "status": statuses.get(e["message_id"], e["status"])} for e in m.parts]
        updates.append(
            {
                "id": m.id,
                "status": status,
                "claimed_until": None,
                "final_at": now if status in FINAL else None,
                "last_error": error,
                "parts": entries,
            }
        )
        if m.communication_id:
            comm_status.setdefault(status, []).append(m.communication_id)
            if error:
                comm_errors[m.communication_id] = error
        changes.append(
            Change(
                MessageState(
                    m.id,
                    m.client_id,
                    m.user_id,
                    m.bulk_id,
                    m.communication_id,
                    entries,
                    error,
                    manager_id=m.manager_id,
                    manager_known=True,
                ),
                status,
            )
        )
    if updates:
        await session.execute(update(OutboxMessage), updates)
    for status, comm_ids in comm_status.items():
        await session.execute(
            update(Communication)
            .where(Communication.id.in_(comm_ids))
            .values(status=status)
            .execution_options(synchronize_session=False)
        )
    if comm_errors:  # rare: the error goes into the communication's details too
        for comm in (
            await session.scalars(select(Communication).where(Communication.id.in_(comm_errors)))
        ).all():
            comm.details = {**comm.details, "error": comm_errors[comm.id]}
    return changes, unknown


def outcome_of(status: str, part_statuses: Sequence[str]) -> str | None:
    """A message is delivered when every part is; it fails with its first part that
    failed. Until every part is placed (status submitted) nothing is decided."""
    if status in FINAL:
        return None
    failed = [s for s in part_statuses if s in FINAL and s != "delivered"]
    if failed:
        return failed[0]
    if status == "submitted" and part_statuses and all(s == "delivered" for s in part_statuses):
        return "delivered"
    return None


async def hold_uncertain(
    session: AsyncSession, now: datetime, hold: timedelta = UNCERTAIN_HOLD
) -> None:
    """The link is back: uncertain messages wait for their receipts from now on."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == "uncertain")
        .values(next_attempt_at=now + hold)
        .execution_options(synchronize_session=False)
    )


async def recover_abandoned(
    session: AsyncSession, now: datetime, hold: timedelta = UNCERTAIN_HOLD, limit: int = 500
) -> int:
    """Messages a crashed worker had claimed: their parts may have reached the SMSC with
    the answers lost. Like a link lost mid-send, they wait for receipts to adopt before
    anything is sent again."""
    rows = (
        await session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.channel == "sms",
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_until < now,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for message in rows:
        try:
            total = len(make_parts(message.body, message.id & 0xFF))
        except ValueError:
            total = 1
        known = {int(e["index"]) for e in message.parts}
        message.parts = [
            *message.parts,
            *(
                {"index": i, "message_id": None, "status": "unknown"}
                for i in range(total)
                if i not in known
            ),
        ]
        message.status = "uncertain"
        message.claimed_until = None
        message.last_error = "the worker sending it stopped; waiting for its receipts"
        message.next_attempt_at = now + hold
    return len(rows)
