"""The card's timeline: every call, SMS, e-mail and note, newest first."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    CTE,
    FromClause,
    Integer,
    Label,
    Select,
    Table,
    bindparam,
    exists,
    func,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, make_transient_to_detached, selectinload

from crm_api.accounts import audit
from crm_api.accounts.models import User
from crm_api.accounts.permissions import can_access_client
from crm_api.clients.models import Client
from crm_api.clients.presenters import comment_of_row, communication_of_row
from crm_api.clients.timeline.models import (
    CommDirection,
    CommKind,
    Communication,
    CommunicationComment,
)
from crm_api.clients.timeline.schemas import CommentPublic, CommunicationPublic
from crm_api.platform.db.base import utcnow
from crm_api.platform.db.direct import Queryable, core_rows
from crm_api.platform.db.session import InsertNew
from crm_api.platform.errors import Forbidden, NotFound

# Authors ride along in the communications' own query; the comments (with theirs) come
# in one more query for the whole page.
TIMELINE_LOAD = (
    joinedload(Communication.user),
    selectinload(Communication.comments).joinedload(CommunicationComment.user),
)
_PAGE_COLUMNS = (
    Communication.id,
    Communication.client_id,
    Communication.kind,
    Communication.direction,
    Communication.status,
    Communication.user_id,
    User.full_name.label("user_name"),
    Communication.occurred_at,
    Communication.subject,
    Communication.body,
    Communication.deal_id,
    Communication.details,
    exists().where(CommunicationComment.communication_id == Communication.id).label("has_comments"),
)


def _timeline_statements(by_kind: bool) -> tuple[Select[Any], Select[Any]]:
    where = [Communication.client_id == bindparam("client_id")]
    if by_kind:
        where.append(Communication.kind == bindparam("kind"))
    count = select(func.count()).select_from(select(Communication.id).where(*where).subquery())
    # The total rides along as a scalar subquery (computed once): one round trip for both.
    page = (
        select(*_PAGE_COLUMNS, count.scalar_subquery().label("total"))
        .outerjoin(User, User.id == Communication.user_id)
        .where(*where)
        .order_by(Communication.occurred_at.desc(), Communication.id.desc())
        .offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
    )
    return page, count


# Built once (by kind or not): building a statement and its cache key each time cost more
# CPU than the card's rows.
_TIMELINE = {by_kind: _timeline_statements(by_kind) for by_kind in (False, True)}
_COMMENTS = (
    select(
        CommunicationComment.communication_id,
        CommunicationComment.id,
        CommunicationComment.user_id,
        User.full_name.label("user_name"),
        CommunicationComment.body,
        CommunicationComment.created_at,
    )
    .outerjoin(User, User.id == CommunicationComment.user_id)
    .where(CommunicationComment.communication_id.in_(bindparam("ids", expanding=True)))
    .order_by(CommunicationComment.id)
)


async def timeline(
    db: Queryable, client_id: int, *, kind: CommKind | None, page: int, page_size: int
) -> tuple[list[CommunicationPublic], int]:
    """A page of the timeline and its total, from rows: loading them into ORM objects
    (with their authors and comments) cost more CPU than the card page's queries."""
    statement, count = _TIMELINE[kind is not None]
    params = {"client_id": client_id, "kind": kind}
    rows = await core_rows(
        db, statement, {**params, "offset": (page - 1) * page_size, "limit": page_size}
    )
    if not rows:
        # An empty page: the first one means no communications, a later one asks the count.
        return [], 0 if page == 1 else (await core_rows(db, count, params))[0][0]
    comments: dict[int, list[CommentPublic]] = {}
    commented = [row.id for row in rows if row.has_comments]
    if commented:
        for c in await core_rows(db, _COMMENTS, {"ids": commented}):
            comments.setdefault(c.communication_id, []).append(comment_of_row(c))
    items = [communication_of_row(row, comments.get(row.id, [])) for row in rows]
    return items, rows[0].total


async def add_note(
    session: AsyncSession, actor: User, client: Client, body: str, deal_id: int | None
) -> Communication:
    note = Communication(
        client_id=client.id,
        kind=CommKind.NOTE,
        direction=None,
        status="done",
        user_id=actor.id,
        occurred_at=utcnow(),
        body=body,
        deal_id=deal_id,
        comments=[],
    )
    session.add(note)
    await session.flush()
    audit.record(
        session,
        actor,
        action="create",
        entity="note",
        entity_id=note.id,
        client_id=client.id,
        changes={"body": [None, body]},
    )
    return note


async def get_for(session: AsyncSession, actor: User, communication_id: int) -> Communication:
    comm = await session.scalar(
        select(Communication).where(Communication.id == communication_id).options(*TIMELINE_LOAD)
    )
    if comm is None:
        raise NotFound(f"communication #{communication_id} not found")
    client = await session.get(Client, comm.client_id)
    if client is None or not can_access_client(actor, client):
        raise Forbidden(f"communication #{communication_id} is on another manager's client")
    return comm


async def add_comment(
    session: AsyncSession, actor: User, comm: Communication, body: str
) -> CommunicationComment:
    comment = CommunicationComment(communication_id=comm.id, user_id=actor.id, body=body)
    session.add(comment)
    await session.flush()
    audit.record(
        session,
        actor,
        action="comment",
        entity="communication",
        entity_id=comm.id,
        client_id=comm.client_id,
        changes={"comment": [None, body]},
    )
    await session.refresh(comment, ["user"])
    return comment


_RECORDED = select(Communication).where(
    Communication.kind == bindparam("kind"), Communication.external_id == bindparam("external_id")
)


@dataclass(frozen=True, slots=True)
class Fact:
    """A communication another system produced (a call, an SMS), known by its external id."""

    client_id: int
    kind: CommKind
    external_id: str
    direction: CommDirection | None
    status: str
    occurred_at: datetime
    user_id: int | None = None
    subject: str | None = None
    body: str | None = None
    deal_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


_FACT_COLUMNS = tuple(f.name for f in fields(Fact))


@functools.lru_cache(maxsize=8)
def _record_new(asking: Label[Any] | None) -> InsertNew:
    """A new fact is one statement (returning what `asking` reads); a replay inserts
    nothing. Every column named (the row's time too): it also runs on a direct
    connection, where SQLAlchemy's Python-side defaults are not applied."""
    also = () if asking is None else (asking,)
    columns = (*_FACT_COLUMNS, "created_at")
    values: dict[str, Any] = {column: bindparam(f"v_{column}") for column in columns}
    table = cast(Table, Communication.__table__)
    return InsertNew(table, ["kind", "external_id"], values=values, also=also)


def fact_params(fact: Fact) -> dict[str, Any]:
    """The parameters of a fact's INSERT (`_record_new`, `new_fact_from`), written now."""
    params = {f"v_{column}": getattr(fact, column) for column in _FACT_COLUMNS}
    return {**params, "v_created_at": utcnow()}


def new_fact_from(source: FromClause) -> CTE:
    """A fact's INSERT for each row of `source` (PostgreSQL; `fact_params`), nothing on a
    replay, as a WITH query returning the row's id: a write that may only happen with
    others, in one statement."""
    table = cast(Table, Communication.__table__)
    columns = (*_FACT_COLUMNS, "created_at")
    values = [bindparam(f"v_{column}", type_=table.c[column].type) for column in columns]
    return (
        postgresql.insert(table)
        .from_select(list(columns), select(*values).select_from(source))
        .on_conflict_do_nothing(index_elements=["kind", "external_id"])
        .returning(table.c.id)
        .cte("fact")
    )


class Recorded(NamedTuple):
    communication: Communication
    created: bool  # False: a replay of a fact written already
    asked: Any  # what `asking` read as the row was written (None on a replay)


async def record_new(
    db: Queryable, fact: Fact, asking: Label[Any] | None = None
) -> dict[str, Any] | None:
    """The row of a fact written now (with what `asking` read, under its name); None for a
    replay, which `record` updates."""
    rows = await core_rows(db, _record_new(asking).on(db), fact_params(fact))
    return rows[0]._asdict() if rows else None


async def record(session: AsyncSession, fact: Fact, asking: Label[Any] | None = None) -> Recorded:
    """Writes a communication produced by another system once: a replay of the same
    external fact updates the one row instead of adding a second. `asking`: an expression
    the INSERT returns as well (it may name the row written as `communications`), so what
    the writer needs to know next costs no statement of its own."""
    row = await record_new(session, fact, asking)
    if row is not None:
        asked = row.pop(asking.name) if asking is not None else None
        # The row as written, in the session as if read: no second round trip for it.
        comm = Communication(**row, comments=[])
        make_transient_to_detached(comm)
        session.add(comm)
        return Recorded(comm, True, asked)
    existing = await session.scalar(_RECORDED, {"kind": fact.kind, "external_id": fact.external_id})
    assert existing is not None, f"{fact.kind} {fact.external_id}: neither inserted nor found"
    existing.status = fact.status
    existing.details = {**existing.details, **fact.details}
    if fact.user_id is not None:
        existing.user_id = fact.user_id
    if fact.body is not None:
        existing.body = fact.body
    return Recorded(existing, False, None)
