"""The card in brief (`ClientSummary`): the one shape the list, the search, the lookup by
number, the card and the screen-pop show of a client, made here alone; and the pop's
card (`CallerCard`): that summary with the last communications and the open deals and
tasks.

Prebuilt Core statements and no ORM objects: for the lookup softphones and integrations
call on every ring (its target is 2 ms), setting up the ORM's eager loads of a card's
seven relations costs more than the query itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Integer,
    Row,
    Select,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.types import TypeEngine

from crm_api.accounts.models import User
from crm_api.accounts.permissions import may_see_client_of
from crm_api.clients.directories.models import ClientGroup, LeadSource, Segment
from crm_api.clients.directories.schemas import DirectoryItem
from crm_api.clients.models import Client, ClientEmail, ClientPhone, client_group_links
from crm_api.clients.presenters import comment_of_row, communication_of_row
from crm_api.clients.schemas import CallerCard, ClientSummary, PopClient, PopDeal, PopTask
from crm_api.clients.service import number_owner, whose_number
from crm_api.clients.timeline.models import Communication, CommunicationComment
from crm_api.clients.timeline.schemas import CommentPublic, CommunicationPublic
from crm_api.platform.db.direct import Queryable, core_rows
from crm_api.platform.errors import Forbidden
from crm_api.platform.schemas import UserRef
from crm_api.sales.models import Deal, DealStage, StageKind
from crm_api.sales.money import from_minor
from crm_api.tasks.models import Task

LAST_COMMUNICATIONS = 3  # on the pop's card
CARD_ITEMS = 5  # open deals, and open tasks, on the pop's card
NOBODY = CallerCard(client=None, communications=[], deals=[], tasks=[])

_company = aliased(Client)
_manager = aliased(User)
_primary_phone = (
    select(ClientPhone.e164)
    .where(ClientPhone.client_id == Client.id)
    .order_by(ClientPhone.position)
    .limit(1)
    .scalar_subquery()
)
_primary_email = (
    select(ClientEmail.email)
    .where(ClientEmail.client_id == Client.id)
    .order_by(ClientEmail.position)
    .limit(1)
    .scalar_subquery()
)
# One row per group of a card (one row with no group when it has none).
_SUMMARY = (
    select(
        Client.id,
        Client.kind.label("client_kind"),  # not the communications' kind (`_CARD_COLUMNS`)
        Client.name,
        Client.company_id,
        _company.name.label("company_name"),
        _primary_phone.label("primary_phone"),
        _primary_email.label("primary_email"),
        Client.manager_id,
        _manager.full_name.label("manager_name"),
        Segment.id.label("segment_id"),
        Segment.name.label("segment_name"),
        LeadSource.id.label("lead_source_id"),
        LeadSource.name.label("lead_source_name"),
        ClientGroup.id.label("group_id"),
        ClientGroup.name.label("group_name"),
        ClientGroup.color.label("group_color"),
        Client.sms_opted_out,
        Client.created_at,
        Client.updated_at,
        # Nobody has touched a card the PBX made (the pop says it is new).
        (Client.created_by_id.is_(None) & Client.updated_by_id.is_(None)).label("untouched"),
    )
    .select_from(Client)
    .outerjoin(_company, _company.id == Client.company_id)
    .outerjoin(_manager, _manager.id == Client.manager_id)
    .outerjoin(Segment, Segment.id == Client.segment_id)
    .outerjoin(LeadSource, LeadSource.id == Client.lead_source_id)
    .outerjoin(client_group_links, client_group_links.c.client_id == Client.id)
    .outerjoin(ClientGroup, ClientGroup.id == client_group_links.c.group_id)
    .order_by(ClientGroup.name, ClientGroup.id)
)


# Built once for each way a card is asked for: building the statement and its cache key
# on every request cost more CPU than running it.
_BY_ID = _SUMMARY.where(Client.id == bindparam("client_id"))
_BY_IDS = _SUMMARY.where(Client.id.in_(bindparam("ids", expanding=True)))
BY_PHONE = _SUMMARY.where(whose_number(bindparam("e164")))  # also the benchmark's reference


async def _summaries(
    db: Queryable, statement: Select[Any], params: dict[str, Any]
) -> list[ClientSummary]:
    """The cards `statement` selects, in brief (in no particular order)."""
    return [card for card, _ in await _summaries_untouched(db, statement, params)]


async def _summaries_untouched(
    db: Queryable, statement: Select[Any], params: dict[str, Any]
) -> list[tuple[ClientSummary, bool]]:
    """`_summaries`, each with whether nobody has touched the card since the PBX made it."""
    found: dict[int, tuple[ClientSummary, bool]] = {}
    for row in await core_rows(db, statement, params):
        _take_summary_row(found, row)
    return list(found.values())


def _take_summary_row(found: dict[int, tuple[ClientSummary, bool]], row: Any) -> None:
    """A row of `_SUMMARY` (one per group of a card) into the cards `found` so far."""
    if row.id not in found:
        found[row.id] = (_summary(row), bool(row.untouched))
    if row.group_id is not None:
        found[row.id][0].groups.append(
            DirectoryItem(id=row.group_id, name=row.group_name, color=row.group_color)
        )


async def find_summary(db: Queryable, client_id: int) -> ClientSummary | None:
    found = await _summaries(db, _BY_ID, {"client_id": client_id})
    return found[0] if found else None


async def summary_of(db: Queryable, client_id: int) -> ClientSummary:
    card = await find_summary(db, client_id)
    assert card is not None, f"no client #{client_id}"
    return card


async def summaries_of(session: AsyncSession, client_ids: Sequence[int]) -> list[ClientSummary]:
    """These cards in brief, in this order."""
    found = {card.id: card for card in await _summaries(session, _BY_IDS, {"ids": client_ids})}
    return [found[client_id] for client_id in client_ids]


async def summary_by_phone(db: Queryable, actor: User, e164: str) -> ClientSummary | None:
    """The card whose number this is, if `actor` may see it (Forbidden otherwise)."""
    found = await _summaries(db, BY_PHONE, {"e164": e164})
    if not found:
        return None
    card = found[0]
    if not may_see_client_of(actor, card.manager.id if card.manager else None):
        raise Forbidden(
            f"client #{card.id} belongs to another manager", details={"client_id": card.id}
        )
    return card


async def caller_card(session: AsyncSession, client: Client, *, made: bool = False) -> CallerCard:
    """`made`: the card was made in this transaction, so nothing is on it yet."""
    untouched = client.created_by_id is None and client.updated_by_id is None
    summary = await summary_of(session, client.id)
    if made:
        return _pop_card(summary, untouched, [], [], [])
    rows = await core_rows(session, _POP_LISTS, {"client_id": summary.id})
    return _caller_card(rows, (summary, untouched))


async def caller_card_by_phone(db: Queryable, e164: str) -> CallerCard | None:
    """The pop's card of whoever's number this is, the card in brief and its lists in one
    statement (the pop's path waits on one round trip, not two); None when it is nobody's
    yet."""
    rows = await core_rows(db, POP_CARD_BY_PHONE, {"e164": e164})
    return _caller_card(rows) if rows else None


def _caller_card(
    rows: Sequence[Any], found: tuple[ClientSummary, bool] | None = None
) -> CallerCard:
    """The pop's card from the rows of its lists, and of the card in brief unless `found`
    gives it (with whether nobody has touched the card)."""
    cards: dict[int, tuple[ClientSummary, bool]] = {}
    comments: dict[int, list[CommentPublic]] = {}
    recent: list[CommunicationPublic] = []
    deals: list[PopDeal] = []
    tasks: list[PopTask] = []
    for row in rows:
        if row.part == _CARD:
            _take_summary_row(cards, row)
        elif row.part == _COMMENTS:
            comments.setdefault(row.communication_id, []).append(comment_of_row(row))
        elif row.part == _COMMUNICATIONS:
            recent.append(communication_of_row(row, comments.get(row.id, [])))
        elif row.part == _DEALS:
            deals.append(
                PopDeal(
                    id=row.id,
                    title=row.title,
                    amount=str(from_minor(row.amount_minor)),
                    currency=row.currency,
                    stage_id=row.stage_id,
                    stage=row.stage,
                )
            )
        else:
            tasks.append(
                PopTask(
                    id=row.id,
                    title=row.title,
                    due_at=row.due_at,
                    assignee_id=row.user_id,
                    deal_id=row.deal_id,
                    kind=row.task_kind,
                    params=row.details,
                )
            )
    summary, untouched = found or next(iter(cards.values()))
    return _pop_card(summary, untouched, recent, deals, tasks)


def _pop_card(
    summary: ClientSummary,
    untouched: bool,
    recent: list[CommunicationPublic],
    deals: list[PopDeal],
    tasks: list[PopTask],
) -> CallerCard:
    # A card the PBX made for an unknown number that nobody has filled in yet.
    is_new = untouched and not recent
    return CallerCard(
        client=PopClient(**summary.model_dump(), is_new=is_new),
        communications=recent,
        deals=deals,
        tasks=tasks,
    )


# The pop's lists come in one statement, a UNION ALL of one part for each (one round trip
# instead of three), and by a number the card in brief with them: each row says its part
# and its place in it. The card comes first, then the comments, for their communications
# to take them.
_CARD, _COMMENTS, _COMMUNICATIONS, _DEALS, _TASKS = range(5)
# The columns every list part has, the ones it has no use for NULL. Typed NULLs: PostgreSQL
# cannot tell the type of a column that is NULL in the first parts of a UNION, and
# SQLAlchemy reads every row by the first part's types (aware datetimes, enums, JSON).
# The columns' names are their tables': the timeline's presenters read these rows too.
_LIST_COLUMNS = {
    "id": Communication.id.type,
    "communication_id": CommunicationComment.communication_id.type,  # a comment's
    "client_id": Communication.client_id.type,  # a communication's
    "user_id": Communication.user_id.type,  # the author; a task's assignee
    "user_name": User.full_name.type,
    "occurred_at": Communication.occurred_at.type,
    "created_at": CommunicationComment.created_at.type,  # a comment's
    "due_at": Task.due_at.type,
    "subject": Communication.subject.type,
    "title": Deal.title.type,  # a deal's or a task's
    "body": Communication.body.type,
    "kind": Communication.kind.type,
    "direction": Communication.direction.type,
    "status": Communication.status.type,
    "deal_id": Communication.deal_id.type,
    "details": Communication.details.type,  # a task's params
    "task_kind": Task.kind.type,
    "amount_minor": Deal.amount_minor.type,
    "currency": Deal.currency.type,
    "stage_id": Deal.stage_id.type,
    "stage": DealStage.name.type,
}
# With the card in brief: its columns too (its id and creation time are the lists' own).
_CARD_COLUMNS: dict[str, TypeEngine[Any]] = _LIST_COLUMNS | {
    str(column.key): column.type
    for column in _SUMMARY.selected_columns
    if column.key not in _LIST_COLUMNS
}


def _part(
    part: int, order: Sequence[Any], names: dict[str, TypeEngine[Any]], **columns: Any
) -> list[Any]:
    """The columns of one part: its own, by `names`' names, and NULL for the others."""
    assert columns.keys() <= names.keys(), columns.keys() - names.keys()
    return [
        literal_column(str(part), Integer).label("part"),
        func.row_number().over(order_by=order).label("place"),
        *(
            (columns[name] if name in columns else cast(null(), type_)).label(name)
            for name, type_ in names.items()
        ),
    ]


_LATEST_ORDER = (Communication.occurred_at.desc(), Communication.id.desc())
_DEALS_ORDER = (Deal.updated_at.desc(), Deal.id.desc())
_TASKS_ORDER = (Task.due_at.is_(None), Task.due_at, Task.id)


def _list_parts(client: Any, names: dict[str, TypeEngine[Any]]) -> list[Select[Any]]:
    """The parts of the lists of the card whose id `client` gives."""
    latest = (
        select(Communication.id)
        .where(Communication.client_id == client)
        .order_by(*_LATEST_ORDER)
        .limit(LAST_COMMUNICATIONS)
    )
    return [
        select(
            *_part(
                _COMMENTS,
                (CommunicationComment.id,),
                names,
                id=CommunicationComment.id,
                communication_id=CommunicationComment.communication_id,
                user_id=CommunicationComment.user_id,
                user_name=User.full_name,
                created_at=CommunicationComment.created_at,
                body=CommunicationComment.body,
            )
        )
        .select_from(CommunicationComment)
        .outerjoin(User, User.id == CommunicationComment.user_id)
        .where(CommunicationComment.communication_id.in_(latest)),
        select(
            *_part(
                _COMMUNICATIONS,
                _LATEST_ORDER,
                names,
                id=Communication.id,
                client_id=Communication.client_id,
                user_id=Communication.user_id,
                user_name=User.full_name,
                occurred_at=Communication.occurred_at,
                subject=Communication.subject,
                body=Communication.body,
                kind=Communication.kind,
                direction=Communication.direction,
                status=Communication.status,
                deal_id=Communication.deal_id,
                details=Communication.details,
            )
        )
        .select_from(Communication)
        .outerjoin(User, User.id == Communication.user_id)
        .where(Communication.client_id == client)
        .order_by(*_LATEST_ORDER)
        .limit(LAST_COMMUNICATIONS),
        select(
            *_part(
                _DEALS,
                _DEALS_ORDER,
                names,
                id=Deal.id,
                title=Deal.title,
                amount_minor=Deal.amount_minor,
                currency=Deal.currency,
                stage_id=Deal.stage_id,
                stage=DealStage.name,
            )
        )
        .select_from(Deal)
        .join(DealStage, DealStage.id == Deal.stage_id)
        .where(Deal.client_id == client, Deal.stage_kind == StageKind.OPEN)
        .order_by(*_DEALS_ORDER)
        .limit(CARD_ITEMS),
        select(
            *_part(
                _TASKS,
                _TASKS_ORDER,
                names,
                id=Task.id,
                title=Task.title,
                due_at=Task.due_at,
                user_id=Task.assignee_id,
                deal_id=Task.deal_id,
                task_kind=Task.kind,
                details=Task.params,
            )
        )
        .where(Task.client_id == client, Task.done_at.is_(None))
        .order_by(*_TASKS_ORDER)
        .limit(CARD_ITEMS),
    ]


def _union(parts: Sequence[Select[Any]]) -> CompoundSelect:
    # Each part from its own subquery: SQLite takes no ORDER BY or LIMIT in a UNION's parts.
    return union_all(*(select(part.subquery()) for part in parts)).order_by("part", "place")


_POP_LISTS = _union(_list_parts(bindparam("client_id"), _LIST_COLUMNS))
_BY_PHONE_ROWS = BY_PHONE.subquery()
POP_CARD_BY_PHONE = _union(
    [
        select(
            *_part(
                _CARD,
                (_BY_PHONE_ROWS.c.group_name, _BY_PHONE_ROWS.c.group_id),
                _CARD_COLUMNS,
                **_BY_PHONE_ROWS.c,
            )
        ),
        *_list_parts(number_owner(bindparam("e164")), _CARD_COLUMNS),
    ]
)


def _summary(row: Row[tuple[object, ...]]) -> ClientSummary:
    return ClientSummary(
        id=row.id,
        kind=row.client_kind,
        name=row.name,
        company_id=row.company_id,
        company_name=row.company_name,
        primary_phone=row.primary_phone,
        primary_email=row.primary_email,
        manager=UserRef(id=row.manager_id, full_name=row.manager_name)
        if row.manager_id is not None
        else None,
        groups=[],
        segment=DirectoryItem(id=row.segment_id, name=row.segment_name)
        if row.segment_id is not None
        else None,
        lead_source=DirectoryItem(id=row.lead_source_id, name=row.lead_source_name)
        if row.lead_source_id is not None
        else None,
        sms_opted_out=row.sms_opted_out,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
