"""Putting messages in the outbox, and moving their state forward."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from crm_api.accounts.models import User
from crm_api.clients.models import Client
from crm_api.clients.timeline.models import CommDirection, CommKind, Communication
from crm_api.messages.models import OutboxMessage
from crm_api.platform.db.base import utcnow
from crm_api.platform.errors import Conflict, Unavailable

FINAL = ("delivered", "sent", "failed", "expired", "rejected")  # "sent": e-mail handed over
CLAIM_FOR = timedelta(seconds=60)


class OptedOut(Conflict):
    code = "client_opted_out"


class SmsNotConfigured(Unavailable):
    code = "sms_not_configured"


class EmailNotConfigured(Unavailable):
    code = "email_not_configured"


async def enqueue(
    session: AsyncSession,
    *,
    channel: str,
    client: Client,
    user: User | None,
    to_address: str,
    body: str,
    subject: str | None = None,
    idempotency_key: str | None = None,
    bulk_id: int | None = None,
) -> tuple[OutboxMessage, bool]:
    """The message and its communication, written together; a repeated idempotency key
    returns the first message instead of queueing a second, also when both requests
    arrive at once (the unique key decides, the loser reads the winner's message)."""
    keyed = bool(idempotency_key) and user is not None
    if keyed and (existing := await _by_key(session, user, idempotency_key)) is not None:
        return existing, False
    try:
        async with session.begin_nested():
            return await _write(
                session,
                channel=channel,
                client=client,
                user=user,
                to_address=to_address,
                body=body,
                subject=subject,
                idempotency_key=idempotency_key,
                bulk_id=bulk_id,
            ), True
    except IntegrityError:
        if not keyed or (existing := await _by_key(session, user, idempotency_key)) is None:
            raise
        return existing, False


async def _by_key(
    session: AsyncSession, user: User | None, idempotency_key: str | None
) -> OutboxMessage | None:
    assert user is not None
    return await session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.user_id == user.id, OutboxMessage.idempotency_key == idempotency_key
        )
    )


async def _write(
    session: AsyncSession,
    *,
    channel: str,
    client: Client,
    user: User | None,
    to_address: str,
    body: str,
    subject: str | None,
    idempotency_key: str | None,
    bulk_id: int | None,
) -> OutboxMessage:
    if channel == "sms" and client.sms_opted_out:
        raise OptedOut(
            f"{client.name} opted out of SMS (replied STOP)", details={"client_id": client.id}
        )
    now = utcnow()
    comm = Communication(
        client_id=client.id,
        kind=CommKind.SMS if channel == "sms" else CommKind.EMAIL,
        direction=CommDirection.OUTBOUND,
        status="queued",
        user_id=user.id if user else None,
        occurred_at=now,
        subject=subject,
        body=body,
        details={"to": to_address},
        comments=[],
    )
    session.add(comm)
    await session.flush()
    message = OutboxMessage(
        channel=channel,
        client_id=client.id,
        user_id=user.id if user else None,
        communication_id=comm.id,
        bulk_id=bulk_id,
        idempotency_key=idempotency_key,
        to_address=to_address,
        subject=subject,
        body=body,
        status="queued",
        next_attempt_at=now,
        parts=[],
    )
    session.add(message)
    await session.flush()
    comm.external_id = f"outbox:{message.id}"
    comm.details = {**comm.details, "outbox_id": message.id}
    return message


async def claim_due(
    session: AsyncSession,
    channel: str,
    now: datetime,
    limit: int,
    *,
    claim_for: timedelta = CLAIM_FOR,
) -> list[int]:
    """Claims due messages for this worker: a claim is an atomic UPDATE guarded by the old
    state, so two workers never send the same message. A claim that outlived a crashed
    worker expires and the message is tried again."""
    rows = await claim_due_rows(
        session, channel, now, limit, (OutboxMessage.id,), claim_for=claim_for
    )
    return sorted(r.id for r in rows)


async def claim_due_rows(
    session: AsyncSession,
    channel: str,
    now: datetime,
    limit: int,
    columns: Sequence[InstrumentedAttribute[Any]],
    *,
    claim_for: timedelta = CLAIM_FOR,
    reclaim_expired: bool = True,
) -> Sequence[Row[Any]]:
    """`claim_due` in one statement, answering the claimed messages' `columns`. Without
    `reclaim_expired` a lapsed claim is left to the channel's own recovery (an SMS may
    have reached the SMSC: it waits for its receipts instead of going again)."""
    due: ColumnElement[bool] = OutboxMessage.status.in_(("queued", "uncertain")) & (
        OutboxMessage.next_attempt_at <= now
    )
    if reclaim_expired:
        due = or_(due, (OutboxMessage.status == "sending") & (OutboxMessage.claimed_until < now))
    # A materialized CTE: a locking subquery with LIMIT inlined into the UPDATE may run
    # again per row on PostgreSQL and claim more than `limit` rows.
    candidates = (
        select(OutboxMessage.id)
        .where(OutboxMessage.channel == channel, due)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    # The guard repeats in the UPDATE; RETURNING says which rows this worker won.
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(select(candidates.c.id)), due)
        .values(
            status="sending", claimed_until=now + claim_for, attempts=OutboxMessage.attempts + 1
        )
        .returning(*columns)
        .execution_options(synchronize_session=False)
    )
    rows = result.all()
    await session.commit()
    return rows


async def renew_claims(
    session: AsyncSession, ids: set[int], now: datetime, claim_for: timedelta
) -> None:
    """Extends this worker's claims on messages it still holds (still "sending")."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "sending")
        .values(claimed_until=now + claim_for)
        .execution_options(synchronize_session=False)
    )


async def set_status(
    session: AsyncSession, message: OutboxMessage, status: str, *, error: str | None = None
) -> Communication | None:
    """Moves the message (and its communication) forward; never back from a final state."""
    if message.status in FINAL and status not in FINAL:
        return None
    now = utcnow()
    message.status = status
    message.claimed_until = None
    if error is not None:
        message.last_error = error
    if status == "submitted":
        message.submitted_at = now
    if status in FINAL:
        message.final_at = now
    comm = (
        await session.get(Communication, message.communication_id)
        if message.communication_id
        else None
    )
    if comm is not None:
        comm.status = status
        if error:
            comm.details = {**comm.details, "error": error}
    return comm


def retry_later(message: OutboxMessage, error: str, now: datetime) -> None:
    delay = min(300, 2 ** min(message.attempts, 8))
    message.status = "queued"
    message.claimed_until = None
    message.last_error = error
    message.next_attempt_at = now + timedelta(seconds=delay)
