"""What the SMSC said about our messages, written down: submit results (every part's
SMSC message id) and delivery receipts. States only move forward."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    any_,
    bindparam,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from crm_api.clients.models import Client
from crm_api.clients.timeline.models import Communication
from crm_api.messages.models import OutboxMessage, SmsPart
from crm_api.messages.outbox import FINAL, retry_later, set_status
from crm_api.platform.db.base import UtcDateTime
from sms_gateway.connection import LINK_LOST, NOT_SENT
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
    # Entries of parts written again in this attempt are replaced by its answer; a part
    # not written (NOT_SENT) keeps its entry: an earlier copy may still be at the SMSC.
    redone = {p.index for p in result.parts if p.status != NOT_SENT}
    message.parts = [e for e in message.parts if e["message_id"] or e["index"] not in redone]
    if lost:
        message.parts = [
            *message.parts,
            *({"index": p.index, "message_id": None, "status": "unknown"} for p in lost),
        ]
    if placed:
        await _upsert_parts(
            session, [(message.id, p.index, p.message_id or "") for p in placed], now
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
    if lost or any(e["status"] == "unknown" for e in message.parts):
        message.status = "uncertain"
        message.claimed_until = None
        message.last_error = error
        message.next_attempt_at = now + hold
        return None
    if all(p.status == NOT_SENT for p in result.parts if p.status != 0):
        # Nothing reached the SMSC (no link, or the part's turn never came in a throttled
        # queue before its deadline): not an attempt against the message.
        message.attempts = max(0, message.attempts - 1)
    if message.attempts >= MAX_ATTEMPTS or now - _aware(message.created_at) > GIVE_UP_AFTER:
        await set_status(session, message, "expired", error=f"gave up: {error}")
        return Change(MessageState.of(message), "expired")
    retry_later(message, error, now)
    return None


async def record_late_send(
    session: AsyncSession, message: OutboxMessage, result: SendResult, now: datetime
) -> Change | None:
    """The result of a send whose claim lapsed before it was written (the worker stalled
    longer than the claim): the message was recovered and waits as uncertain for receipts
    to adopt. The SMSC's ids in the result are better proof than a receipt: they take the
    parts in doubt, so the message is not sent again when its hold ends (its receipts may
    come much later). Anything else the result says changes nothing: the hold decides."""
    known = {int(e["index"]) for e in message.parts if e["message_id"]}
    placed = {
        p.index: p.message_id
        for p in result.parts
        if p.status == 0 and p.message_id and p.index not in known
    }
    if not placed:
        return None
    await _upsert_parts(session, [(message.id, i, mid) for i, mid in placed.items()], now)
    message.parts = [
        *(e for e in message.parts if e["message_id"] or int(e["index"]) not in placed),
        *({"index": i, "message_id": mid, "status": "submitted"} for i, mid in placed.items()),
    ]
    if result.outcome != "submitted" or not all(e["message_id"] for e in message.parts):
        return None
    await set_status(session, message, "submitted")
    return Change(MessageState.of(message), "submitted")


async def record_first_submits(
    session: AsyncSession, results: dict[int, SendResult], now: datetime
) -> tuple[list[Change], set[int]]:
    """The common case in bulk statements: a first attempt whose every part the SMSC took.
    Returns the changes and the ids left for `record_send` (anything else)."""
    entries = {
        mid: [
            {"index": p.index, "message_id": p.message_id, "status": "submitted"}
            for p in result.parts
        ]
        for mid, result in results.items()
        if result.outcome == "submitted"
    }
    if not entries:
        return [], set(results)
    if session.get_bind().dialect.name == "postgresql":
        rows = (
            await session.execute(_FIRST_SUBMITS, {"messages": _recordset(entries), "now": now})
        ).all()
        fast = [_Submitted(*r) for r in rows]
    else:
        fast = await _first_submits_apart(session, entries, now)
    # Detached copies carrying what the frames need.
    changes = [
        Change(
            MessageState(
                r.id,
                r.client_id,
                r.user_id,
                r.bulk_id,
                r.communication_id,
                entries[r.id],
                manager_id=r.manager_id,
                manager_known=True,
            ),
            "submitted",
        )
        for r in fast
    ]
    return changes, set(results) - {r.id for r in fast}


@dataclass(frozen=True, slots=True)
class _Submitted:
    id: int
    client_id: int
    user_id: int | None
    bulk_id: int | None
    communication_id: int | None
    manager_id: int | None


# PostgreSQL, one statement: the messages still "sending" with no parts (no other claim
# won meanwhile) become "submitted", their parts are recorded (an SMSC id already known
# moves to this message, as in `_upsert_parts`) and their communications follow. The
# rows are found by primary key ("= ANY(ARRAY(…))", "IS TRUE"), whatever the planner
# guesses of the batch (100 rows from a function: a scan of a small table looks cheaper)
# or of the "sending" messages (their index holds every claim until a vacuum).
_FIRST_SUBMITS = text(
    """
WITH given AS (
    SELECT * FROM jsonb_to_recordset(:messages) AS g(id integer, parts jsonb)
), fast AS (
    UPDATE outbox_messages AS m
    SET status = 'submitted', claimed_until = NULL, submitted_at = :now, parts = g.parts
    FROM given AS g
    WHERE m.id = ANY(ARRAY(SELECT id FROM given)) AND m.id = g.id
        AND (m.status = 'sending' AND m.parts = '[]'::jsonb) IS TRUE
    RETURNING m.id, m.client_id, m.user_id, m.bulk_id, m.communication_id, m.parts
), placed AS (
    INSERT INTO sms_parts (outbox_id, part_index, smsc_message_id, status, updated_at)
    SELECT fast.id, (e ->> 'index')::integer, coalesce(e ->> 'message_id', ''), 'submitted', :now
    FROM fast, jsonb_array_elements(fast.parts) AS e
    ON CONFLICT (smsc_message_id) DO UPDATE SET outbox_id = excluded.outbox_id,
        part_index = excluded.part_index, status = 'submitted', updated_at = excluded.updated_at
), followed AS (
    UPDATE communications AS c SET status = 'submitted'
    WHERE c.id = ANY(ARRAY(SELECT communication_id FROM fast))
)
SELECT fast.id, fast.client_id, fast.user_id, fast.bulk_id, fast.communication_id,
    clients.manager_id
FROM fast JOIN clients ON clients.id = fast.client_id
"""
).bindparams(bindparam("messages", type_=JSONB), bindparam("now", type_=UtcDateTime()))


def _recordset(entries: Mapping[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"id": mid, "parts": parts} for mid, parts in entries.items()]


async def _first_submits_apart(
    session: AsyncSession, entries: Mapping[int, list[dict[str, Any]]], now: datetime
) -> list[_Submitted]:
    """`_FIRST_SUBMITS` elsewhere (SQLite), statement by statement."""
    fast = [
        _Submitted(r.id, r.client_id, r.user_id, r.bulk_id, r.communication_id, r.manager_id)
        for r in await _message_rows(session, set(entries))
        if r.status == "sending" and not r.parts
    ]
    if not fast:
        return []
    await _upsert_parts(
        session,
        [(r.id, e["index"], e["message_id"] or "") for r in fast for e in entries[r.id]],
        now,
    )
    await _update_by_id(
        session,
        OutboxMessage,
        [
            {
                "id": r.id,
                "status": "submitted",
                "claimed_until": None,
                "submitted_at": now,
                "parts": entries[r.id],
            }
            for r in fast
        ],
    )
    comm_ids = [r.communication_id for r in fast if r.communication_id]
    if comm_ids:
        await session.execute(
            update(Communication)
            .where(_among(session, Communication.id, comm_ids))
            .values(status="submitted")
            .execution_options(synchronize_session=False)
        )
    return fast


def placed_indexes(parts: list[dict[str, Any]]) -> set[int]:
    """Parts an earlier attempt already placed (of a message's `parts`): a retry sends only
    the others."""
    return {int(p["index"]) for p in parts if p["message_id"]}


def _aware(value: datetime) -> datetime:
    # SQLite hands naive datetimes back; they were written in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


ADOPT_QUIET = timedelta(days=1)  # other traffic to a number this recent: no adoption


@dataclass(frozen=True, slots=True)
class PartRow:
    id: int
    outbox_id: int
    smsc_message_id: str
    status: str


_MESSAGE_COLUMNS = (  # a MessageRow's, in its order
    OutboxMessage.id,
    OutboxMessage.status,
    OutboxMessage.parts,
    OutboxMessage.communication_id,
    OutboxMessage.client_id,
    OutboxMessage.user_id,
    OutboxMessage.bulk_id,
    Client.manager_id,
)


@dataclass(frozen=True, slots=True)
class MessageRow:
    """What deciding a message's state from its parts reads."""

    id: int
    status: str
    parts: list[dict[str, Any]]
    communication_id: int | None
    client_id: int
    user_id: int | None
    bulk_id: int | None
    manager_id: int | None


def fold_receipts(
    parts: Mapping[str, PartRow], receipts: Sequence[DeliveryReceipt]
) -> dict[int, str]:
    """The new status of each part the receipts move (by part id): in order, a final
    status stays final; receipts of ids no part has are left out."""
    new_status: dict[int, str] = {}
    for receipt in receipts:
        part = parts.get(receipt.message_id)
        if part is None or new_status.get(part.id, part.status) in FINAL:
            continue
        new_status[part.id] = receipt.outcome or receipt.stat.lower()
    return new_status


def message_changes(
    messages: Sequence[MessageRow], parts: Mapping[int, Sequence[tuple[int, str, str]]]
) -> list[Change]:
    """Where each message stands after its parts (index, SMSC id, status) moved: only
    the messages whose state changes."""
    changes = []
    for m in messages:
        mine = parts.get(m.id, ())
        status = outcome_of(m.status, [st for _, _, st in mine])
        if status is None or status == m.status:
            continue
        error = next(
            (f"part {i + 1}: {st}" for i, _, st in mine if st in FINAL and st != "delivered"),
            None,
        )
        statuses = {mid: st for _, mid, st in mine}
        entries = [{**e, "status": statuses.get(e["message_id"], e["status"])} for e in m.parts]
        state = MessageState(
            m.id,
            m.client_id,
            m.user_id,
            m.bulk_id,
            m.communication_id,
            entries,
            error,
            manager_id=m.manager_id,
            manager_known=True,
        )
        changes.append(Change(state, status))
    return changes


async def apply_receipts(
    session: AsyncSession,
    receipts: Sequence[DeliveryReceipt],
    now: datetime,
    *,
    hold: timedelta = UNCERTAIN_HOLD,
) -> tuple[list[Change], set[str]]:
    """Applies a batch of receipts: one query reads the parts and their messages, then
    set-based writes; returns the messages whose state changed and the receipt ids no part
    is known for (yet: a receipt can outrun our own commit)."""
    if not receipts:
        return [], set()
    ids = {r.message_id for r in receipts}
    parts, messages, parts_of = await _receipted(session, ids)
    unknown = ids - parts.keys()
    if unknown:
        unmatched = [r for r in receipts if r.message_id in unknown]
        adopted = await adopt(session, unmatched, now, hold=hold)
        if adopted:
            unknown -= adopted
            more = await _receipted(session, adopted)
            parts.update(more[0])
            messages.update(more[1])
            parts_of.update(more[2])
    new_status = fold_receipts(parts, receipts)
    if not new_status:
        return [], unknown
    touched = {p.outbox_id for p in parts.values() if p.id in new_status}
    after = {
        mid: [(index, smsc_id, new_status.get(pid, st)) for pid, index, smsc_id, st in rows]
        for mid, rows in parts_of.items()
        if mid in touched
    }
    changes = message_changes([messages[mid] for mid in touched], after)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            _RECEIPTS,
            {
                "parts": [{"id": pid, "status": st} for pid, st in new_status.items()],
                "messages": [_moved(c) for c in changes],
                "now": now,
            },
        )
    else:
        await _update_by_id(
            session,
            SmsPart,
            [{"id": pid, "status": st, "updated_at": now} for pid, st in new_status.items()],
        )
        await _write_changes(session, changes, now)
    await _note_errors(session, changes)
    return changes, unknown


# PostgreSQL, one statement: the parts' new states, their messages' (for the messages
# whose state changed) and their communications'; by primary key, as `_FIRST_SUBMITS`.
_RECEIPTS = text(
    """
WITH part AS (
    SELECT * FROM jsonb_to_recordset(:parts) AS g(id integer, status text)
), message AS (
    SELECT * FROM jsonb_to_recordset(:messages)
        AS g(id integer, status text, final boolean, last_error text, parts jsonb,
            communication_id integer)
), parts AS (
    UPDATE sms_parts AS p SET status = part.status, updated_at = :now
    FROM part WHERE p.id = ANY(ARRAY(SELECT id FROM part)) AND p.id = part.id
), moved AS (
    UPDATE outbox_messages AS m
    SET status = g.status, claimed_until = NULL, final_at = CASE WHEN g.final THEN :now END,
        last_error = g.last_error, parts = g.parts
    FROM message AS g
    WHERE m.id = ANY(ARRAY(SELECT id FROM message)) AND m.id = g.id
)
UPDATE communications AS c SET status = g.status
FROM message AS g
WHERE c.id = ANY(ARRAY(SELECT communication_id FROM message)) AND c.id = g.communication_id
"""
).bindparams(
    bindparam("parts", type_=JSONB),
    bindparam("messages", type_=JSONB),
    bindparam("now", type_=UtcDateTime()),
)


def _moved(c: Change) -> dict[str, Any]:
    return {
        "id": c.message.id,
        "status": c.status,
        "final": c.status in FINAL,
        "last_error": c.message.last_error,
        "parts": c.message.parts,
        "communication_id": c.message.communication_id,
    }


async def _receipted(
    session: AsyncSession, smsc_ids: set[str]
) -> tuple[dict[str, PartRow], dict[int, MessageRow], dict[int, list[tuple[int, int, str, str]]]]:
    """For the parts with these SMSC ids, in one query: those parts, their messages, and
    every part (id, index, SMSC id, status) of those messages."""
    receipted = select(SmsPart.outbox_id).where(_among(session, SmsPart.smsc_message_id, smsc_ids))
    rows = await session.execute(
        select(
            *_MESSAGE_COLUMNS,
            SmsPart.id,
            SmsPart.part_index,
            SmsPart.smsc_message_id,
            SmsPart.status,
        )
        .join(OutboxMessage, OutboxMessage.id == SmsPart.outbox_id)
        .join(Client, Client.id == OutboxMessage.client_id)
        .where(SmsPart.outbox_id.in_(receipted))
        .order_by(SmsPart.part_index)
    )
    parts: dict[str, PartRow] = {}
    messages: dict[int, MessageRow] = {}
    parts_of: dict[int, list[tuple[int, int, str, str]]] = {}
    for r in rows.all():
        mid, part_id, index, smsc_id, status = r[0], r[8], r[9], r[10], r[11]
        if mid not in messages:
            messages[mid] = MessageRow(*r[:8])
        parts_of.setdefault(mid, []).append((part_id, index, smsc_id, status))
        if smsc_id in smsc_ids:
            parts[smsc_id] = PartRow(part_id, mid, smsc_id, status)
    return parts, messages, parts_of


async def _message_rows(session: AsyncSession, message_ids: set[int]) -> list[MessageRow]:
    rows = await session.execute(
        select(*_MESSAGE_COLUMNS)
        .join(Client, Client.id == OutboxMessage.client_id)
        .where(_among(session, OutboxMessage.id, message_ids))
    )
    return [MessageRow(*r) for r in rows.all()]


async def _write_changes(session: AsyncSession, changes: Sequence[Change], now: datetime) -> None:
    """`_RECEIPTS`'s messages and communications elsewhere (SQLite): one statement per
    status."""
    if not changes:
        return
    await _update_by_id(
        session,
        OutboxMessage,
        [
            {
                "id": c.message.id,
                "status": c.status,
                "claimed_until": None,
                "final_at": now if c.status in FINAL else None,
                "last_error": c.message.last_error,
                "parts": c.message.parts,
            }
            for c in changes
        ],
    )
    comm_status: dict[str, list[int]] = {}
    for c in changes:
        if c.message.communication_id:
            comm_status.setdefault(c.status, []).append(c.message.communication_id)
    for status, comm_ids in comm_status.items():
        await session.execute(
            update(Communication)
            .where(_among(session, Communication.id, comm_ids))
            .values(status=status)
            .execution_options(synchronize_session=False)
        )


async def _note_errors(session: AsyncSession, changes: Sequence[Change]) -> None:
    """Rare: a message's error goes into its communication's details too."""
    comm_errors = {
        c.message.communication_id: c.message.last_error
        for c in changes
        if c.message.communication_id and c.message.last_error
    }
    if comm_errors:
        for comm in (
            await session.scalars(select(Communication).where(Communication.id.in_(comm_errors)))
        ).all():
            comm.details = {**comm.details, "error": comm_errors[comm.id]}


async def adopt(
    session: AsyncSession,
    receipts: Sequence[DeliveryReceipt],
    now: datetime,
    *,
    hold: timedelta = UNCERTAIN_HOLD,
) -> set[str]:
    """Receipts with ids no part has, for a part that reached the SMSC unanswered (the
    link died): taken only when they can belong to nothing else. The number's only
    recent message must be one waiting on such parts (uncertain), not being sent (its
    result could still bring the id): then the receipts are its own. Anything less
    certain leaves them unmatched (the caller keeps them and tries again), and the part
    goes again after its hold. Each adoption starts every uncertain message's hold again:
    an SMSC delivering its backlog after a crash is still bringing their receipts. A
    receipt adopted by nothing does not: it may be anyone's (another sender on the
    account, a message long settled), and a steady trickle of those would hold messages
    in doubt forever. Returns the ids adopted."""
    by_number: dict[str, list[DeliveryReceipt]] = {}
    # One receipt per id: a copy delivered again (its session died while the first
    # waited unanswered) is not a receipt of another part.
    for r in {r.message_id: r for r in receipts}.values():
        digits = "".join(ch for ch in r.handset if ch.isdigit())
        if digits:
            by_number.setdefault("+" + digits, []).append(r)
    if not by_number:
        return set()
    recent = (
        await session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.channel == "sms",
                OutboxMessage.to_address.in_(by_number.keys()),
                or_(OutboxMessage.final_at.is_(None), OutboxMessage.final_at > now - ADOPT_QUIET),
            )
            .order_by(OutboxMessage.id)
        )
    ).all()
    by_address: dict[str, list[OutboxMessage]] = {}
    for message in recent:
        by_address.setdefault(message.to_address, []).append(message)
    candidates = {
        number: messages[0]
        for number, messages in by_address.items()
        if len(messages) == 1 and messages[0].status == "uncertain"
    }
    if not candidates:
        return set()
    # Locked, and read again as they are now: a claim taking a message as its hold ends
    # and this adoption wait for each other. The claim won: the message is no longer
    # uncertain and is left alone (its receipt stays unmatched); else the claim skips it.
    # (Read unlocked, an adoption overwrote the claim it raced: the message counted as
    # delivered, and the claim sent it again.)
    still = {
        m.id
        for m in await session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.id.in_([m.id for m in candidates.values()]),
                OutboxMessage.status == "uncertain",
            )
            .order_by(OutboxMessage.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    adopted: set[str] = set()
    for number, message in candidates.items():
        if message.id not in still:
            continue
        waiting = by_number[number]
        slots = [i for i, e in enumerate(message.parts) if e["status"] == "unknown"]
        if len(waiting) > len(slots):
            continue  # more receipts than parts in doubt: some are not this message's
        entries = list(message.parts)
        for slot, receipt in zip(slots, waiting, strict=False):
            index = int(entries[slot]["index"])
            entries[slot] = {
                "index": index,
                "message_id": receipt.message_id,
                "status": "submitted",
            }
            await _upsert_parts(session, [(message.id, index, receipt.message_id)], now)
            adopted.add(receipt.message_id)
        message.parts = entries
        if not any(e["status"] == "unknown" for e in entries):
            await set_status(session, message, "submitted")
    if adopted:
        await session.flush()
        await hold_uncertain(session, now, hold)
    return adopted


def _among(
    session: AsyncSession, column: InstrumentedAttribute[Any], values: Collection[Any]
) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(array)`: one parameter, so the
    statement is prepared once rather than once per number of values (batches vary)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


async def _update_by_id(
    session: AsyncSession, model: type[OutboxMessage | SmsPart], rows: list[dict[str, Any]]
) -> None:
    """UPDATE of rows by id (each dict: "id" and the same columns), one Core statement
    executed for every row: for SQLite (PostgreSQL writes a batch in one statement:
    `_FIRST_SUBMITS`, `_RECEIPTS`). (The ORM's bulk update by primary key spent more CPU
    per row than the database did.)"""
    if not rows:
        return
    table = model.metadata.tables[model.__tablename__]
    names = [name for name in rows[0] if name != "id"]
    stmt = table.update().where(table.c.id == bindparam("row_id"))
    conn = await session.connection()
    await conn.execute(stmt, [{"row_id": r["id"], **{n: r[n] for n in names}} for r in rows])


async def _upsert_parts(
    session: AsyncSession, parts: Sequence[tuple[int, int, str]], now: datetime
) -> None:
    """(message id, part index, SMSC id) rows. An id already known (an SMSC reusing
    ids) moves to the message the SMSC gave it last: the submit_sm_resp is the proof."""
    if not parts:
        return
    columns = ("outbox_id", "part_index", "smsc_message_id")
    rows: list[dict[str, Any]] | None = None
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter per column, unnested: one statement whatever the batch size.
        table = SmsPart.metadata.tables[SmsPart.__tablename__]
        arrays = [
            bindparam(None, [part[i] for part in parts], type_=ARRAY(table.c[name].type))
            for i, name in enumerate(columns)
        ]
        given = func.unnest(*arrays).table_valued(*columns).render_derived(name="given")
        stmt: PgInsert | SqliteInsert = pg_insert(SmsPart).from_select(
            [*columns, "status", "updated_at"],
            select(
                *(given.c[name] for name in columns),
                literal("submitted", SmsPart.status.type),
                literal(now, SmsPart.updated_at.type),
            ),
        )
    else:
        stmt = sqlite_insert(SmsPart)
        rows = [
            {**dict(zip(columns, part, strict=True)), "status": "submitted", "updated_at": now}
            for part in parts
        ]
    upsert = stmt.on_conflict_do_update(
        index_elements=[SmsPart.smsc_message_id],
        set_={
            "outbox_id": stmt.excluded.outbox_id,
            "part_index": stmt.excluded.part_index,
            "status": "submitted",
            "updated_at": stmt.excluded.updated_at,
        },
    )
    await session.execute(upsert, rows)


async def overdue_parts(
    session: AsyncSession, now: datetime, overdue: timedelta, limit: int = 200
) -> list[tuple[str, datetime | None]]:
    """Parts the SMSC took that have had no final receipt and no news for `overdue`: their
    SMSC ids, with when their message was submitted."""
    rows = await session.execute(
        select(SmsPart.smsc_message_id, OutboxMessage.submitted_at)
        .join(OutboxMessage, OutboxMessage.id == SmsPart.outbox_id)
        .where(SmsPart.status.not_in(FINAL), SmsPart.updated_at < now - overdue)
        .order_by(SmsPart.updated_at)
        .limit(limit)
    )
    return [(mid, _aware(at) if at else None) for mid, at in rows.all()]


async def touch_parts(session: AsyncSession, smsc_ids: Sequence[str], now: datetime) -> None:
    """Asked about and still on their way: asked again after another overdue period."""
    if smsc_ids:
        await session.execute(
            update(SmsPart)
            .where(SmsPart.smsc_message_id.in_(smsc_ids))
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )


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
