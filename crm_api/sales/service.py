"""Deals and their pipeline: stages, moves, closing won or lost, the stage history.

Every stage change closes the deal's current stage visit and opens the next one in the
same transaction, so the funnel (conversion, time in stage) is read from the visits.
Closing a deal also marks its open "deal idle" task done, in that transaction too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from crm_api.accounts.models import Role, User
from crm_api.accounts.permissions import client_scope, may_see_client_of, sees_all_clients
from crm_api.clients import service as clients_domain
from crm_api.clients.directories.models import LeadSource
from crm_api.clients.models import Client
from crm_api.clients.timeline.models import Communication, CommunicationComment
from crm_api.platform.db.base import utcnow
from crm_api.platform.errors import Conflict, InvalidInput, NotFound
from crm_api.sales.models import Deal, DealStage, DealStageVisit, StageKind
from crm_api.sales.money import to_minor
from crm_api.sales.types import DealChanges, NewDeal, StageChanges
from crm_api.tasks.models import STALE_DEAL_KIND, Task

CARD_COMMUNICATIONS = 50


class DealClosed(Conflict):
    code = "deal_closed"


# --- stages ----------------------------------------------------------------------------


async def stages(session: AsyncSession, *, active_only: bool = False) -> list[DealStage]:
    q = select(DealStage).order_by(DealStage.position, DealStage.id)
    if active_only:
        q = q.where(DealStage.is_active.is_(True))
    return list((await session.scalars(q)).all())


async def get_stage(session: AsyncSession, stage_id: int, field: str = "stage_id") -> DealStage:
    stage = await session.get(DealStage, stage_id)
    if stage is None:
        raise InvalidInput(field, f"unknown stage {stage_id}")
    return stage


async def create_stage(
    session: AsyncSession, *, name: str, name_ru: str | None, kind: StageKind
) -> DealStage:
    last = await session.scalar(select(func.max(DealStage.position)))
    stage = DealStage(
        name=name,
        name_ru=name_ru,
        kind=kind,
        position=(last or 0) + 1,
        is_active=True,
    )
    session.add(stage)
    await session.flush()
    return stage


async def update_stage(session: AsyncSession, stage_id: int, sent: StageChanges) -> DealStage:
    stage = await session.get(DealStage, stage_id)
    if stage is None:
        raise NotFound(f"no stage {stage_id}")
    changes: dict[str, Any] = dict(sent)
    if changes.get("name") is None:
        changes.pop("name", None)
    if "kind" in changes and changes["kind"] is not None and changes["kind"] != stage.kind:
        used = await session.scalar(select(func.count()).where(Deal.stage_id == stage_id))
        if used:
            raise Conflict(f"{used} deals are in this stage: its kind cannot change")
    for key, value in changes.items():
        if value is not None or key == "name_ru":
            setattr(stage, key, value)
    await session.flush()
    return stage


async def reorder_stages(session: AsyncSession, ids: Sequence[int]) -> list[DealStage]:
    current = await stages(session)
    if sorted(ids) != sorted(s.id for s in current) or len(set(ids)) != len(ids):
        raise InvalidInput("ids", "list every stage exactly once")
    by_id = {s.id: s for s in current}
    for pos, sid in enumerate(ids):
        by_id[sid].position = pos
    await session.flush()
    return await stages(session)


async def first_open_stage(session: AsyncSession) -> DealStage:
    stage = await session.scalar(
        select(DealStage)
        .where(DealStage.kind == StageKind.OPEN, DealStage.is_active.is_(True))
        .order_by(DealStage.position, DealStage.id)
        .limit(1)
    )
    if stage is None:
        raise Conflict("no active open stage: add one in the stage directory")
    return stage


async def stage_of_kind(session: AsyncSession, kind: StageKind) -> DealStage:
    stage = await session.scalar(
        select(DealStage)
        .where(DealStage.kind == kind, DealStage.is_active.is_(True))
        .order_by(DealStage.position, DealStage.id)
        .limit(1)
    )
    if stage is None:
        raise Conflict(f"no active {kind} stage in the stage directory")
    return stage


# --- deals -----------------------------------------------------------------------------


def deal_scope(user: User) -> ColumnElement[bool]:
    """Managers see deals of the clients they see, and deals they manage."""
    if sees_all_clients(user):
        return Deal.id.is_not(None)
    return or_(client_scope(user), Deal.manager_id == user.id)


def _with_refs(q: Select[Deal]) -> Select[Deal]:
    return q.options(selectinload(Deal.client), selectinload(Deal.manager))


async def get_for(session: AsyncSession, user: User, deal_id: int) -> Deal:
    deal = await session.scalar(
        _with_refs(
            select(Deal).join(Client, Client.id == Deal.client_id).where(Deal.id == deal_id)
        ).where(deal_scope(user))
    )
    if deal is None:
        raise NotFound(f"no deal {deal_id}")
    return deal


async def load(session: AsyncSession, deal_id: int) -> Deal:
    """The deal as committed, with its client and manager, whoever asks."""
    deal = await session.scalar(
        _with_refs(select(Deal).where(Deal.id == deal_id)).execution_options(populate_existing=True)
    )
    if deal is None:
        raise NotFound(f"no deal {deal_id}")
    return deal


async def _manager(session: AsyncSession, manager_id: int) -> User:
    manager = await session.get(User, manager_id)
    if manager is None or not manager.is_active:
        raise InvalidInput("manager_id", f"unknown user {manager_id}")
    return manager


async def _lead_source(session: AsyncSession, source_id: int) -> None:
    if await session.get(LeadSource, source_id) is None:
        raise InvalidInput("lead_source_id", f"unknown lead source {source_id}")


async def create_deal(
    session: AsyncSession, user: User, data: NewDeal, *, at: datetime | None = None
) -> Deal:
    at = at or utcnow()
    client = await clients_domain.get_for(session, user, data.client_id)
    stage = await get_stage(session, data.stage_id) if data.stage_id else None
    stage = stage or await first_open_stage(session)
    if stage.kind is not StageKind.OPEN or not stage.is_active:
        raise InvalidInput("stage_id", "a new deal starts in an active open stage")
    manager_id = data.manager_id
    if manager_id is None:
        manager_id = user.id if user.role is Role.MANAGER else client.manager_id
    if manager_id is not None:
        await _manager(session, manager_id)
    if data.lead_source_id is not None:
        await _lead_source(session, data.lead_source_id)
    deal = Deal(
        client_id=client.id,
        title=data.title,
        amount_minor=to_minor(data.amount),
        currency=data.currency,
        manager_id=manager_id,
        stage_id=stage.id,
        stage_kind=stage.kind,
        lead_source_id=data.lead_source_id or client.lead_source_id,
        expected_close=data.expected_close,
        created_at=at,
        created_by_id=user.id,
        updated_at=at,
        stage_entered_at=at,
        last_activity_at=at,
    )
    session.add(deal)
    await session.flush()
    session.add(
        DealStageVisit(
            deal_id=deal.id,
            stage_id=stage.id,
            user_id=user.id,
            entered_at=at,
            deal_created_at=deal.created_at,
        )
    )
    await session.flush()
    return deal


async def update_deal(session: AsyncSession, user: User, deal_id: int, sent: DealChanges) -> Deal:
    deal = await get_for(session, user, deal_id)
    changes: dict[str, Any] = dict(sent)
    if changes.get("manager_id") is not None:
        await _manager(session, changes["manager_id"])
    if changes.get("lead_source_id") is not None:
        await _lead_source(session, changes["lead_source_id"])
    for key in ("title", "currency"):
        if changes.get(key) is None:
            changes.pop(key, None)
    if "amount" in changes:
        amount = changes.pop("amount")
        if amount is not None:
            deal.amount_minor = to_minor(amount)
    for key, value in changes.items():
        setattr(deal, key, value)
    now = utcnow()
    deal.updated_at = now
    deal.last_activity_at = now
    await session.flush()
    return deal


async def _change_stage(
    session: AsyncSession, deal: Deal, stage: DealStage, user: User, at: datetime
) -> None:
    """Closes the current visit and opens the next one, guarded against a concurrent
    move: the UPDATE only matches while the deal is still where this request saw it."""
    moved = await session.execute(
        update(Deal)
        .where(
            Deal.id == deal.id, Deal.stage_id == deal.stage_id, Deal.stage_kind == StageKind.OPEN
        )
        .values(
            stage_id=stage.id,
            stage_kind=stage.kind,
            stage_entered_at=at,
            updated_at=at,
            last_activity_at=at,
            closed_at=at if stage.kind is not StageKind.OPEN else None,
        )
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise DealClosed("the deal was changed meanwhile: reload it")
    await session.execute(
        update(DealStageVisit)
        .where(DealStageVisit.deal_id == deal.id, DealStageVisit.left_at.is_(None))
        .values(left_at=at)
    )
    session.add(
        DealStageVisit(
            deal_id=deal.id,
            stage_id=stage.id,
            deal_created_at=deal.created_at,
            from_stage_id=deal.stage_id,
            user_id=user.id,
            entered_at=at,
        )
    )
    await session.flush()
    await session.refresh(deal)


async def move_deal(
    session: AsyncSession, user: User, deal_id: int, stage_id: int, *, at: datetime | None = None
) -> Deal:
    """A board drag: to another open stage. Won and lost are reached by closing."""
    deal = await get_for(session, user, deal_id)
    if deal.stage_kind is not StageKind.OPEN:
        raise DealClosed(f"the deal is already {deal.stage_kind}: it cannot move")
    stage = await get_stage(session, stage_id)
    if not stage.is_active:
        raise InvalidInput("stage_id", f"stage {stage_id} is not active")
    if stage.kind is not StageKind.OPEN:
        raise InvalidInput("stage_id", "close the deal as won or lost instead")
    if stage.id == deal.stage_id:
        return deal
    await _change_stage(session, deal, stage, user, at or utcnow())
    return deal


async def close_deal(
    session: AsyncSession,
    user: User,
    deal_id: int,
    *,
    outcome: str,
    reason: str | None = None,
    satisfaction: int | None = None,
    at: datetime | None = None,
) -> tuple[Deal, list[Task]]:
    """Won or lost; returns the deal and its "deal idle" tasks this made done."""
    at = at or utcnow()
    deal = await get_for(session, user, deal_id)
    if deal.stage_kind is not StageKind.OPEN:
        raise DealClosed(f"the deal is already {deal.stage_kind}")
    kind = StageKind(outcome)
    if kind is StageKind.LOST and not (reason and reason.strip()):
        raise InvalidInput("reason", "say why the deal was lost")
    stage = await stage_of_kind(session, kind)
    await _change_stage(session, deal, stage, user, at)
    if kind is StageKind.LOST:
        deal.lost_reason = reason
    if satisfaction is not None:
        deal.satisfaction = satisfaction
    idle_done = await session.scalars(
        update(Task)
        .where(Task.deal_id == deal.id, Task.kind == STALE_DEAL_KIND, Task.done_at.is_(None))
        .values(done_at=at)
        .returning(Task)
        .execution_options(populate_existing=True)
    )
    tasks = list(idle_done)
    await session.flush()
    return deal, tasks


async def history(session: AsyncSession, deal_id: int) -> list[DealStageVisit]:
    return list(
        (
            await session.scalars(
                select(DealStageVisit)
                .where(DealStageVisit.deal_id == deal_id)
                .order_by(DealStageVisit.entered_at, DealStageVisit.id)
            )
        ).all()
    )


async def search(
    session: AsyncSession,
    user: User,
    *,
    stage_id: int | None = None,
    manager_id: int | None = None,
    client_id: int | None = None,
    open_only: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Deal], int]:
    q = select(Deal).join(Client, Client.id == Deal.client_id).where(deal_scope(user))
    if stage_id is not None:
        q = q.where(Deal.stage_id == stage_id)
    if manager_id is not None:
        q = q.where(Deal.manager_id == manager_id)
    if client_id is not None:
        q = q.where(Deal.client_id == client_id)
    if open_only:
        q = q.where(Deal.stage_kind == StageKind.OPEN)
    total = await session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = await session.scalars(
        _with_refs(q.order_by(Deal.updated_at.desc(), Deal.id.desc()).limit(limit).offset(offset))
    )
    return list(rows.all()), total


async def board(
    session: AsyncSession, user: User, *, manager_id: int | None, per_stage: int
) -> list[tuple[DealStage, int, int, list[Deal]]]:
    """Every active stage with its deal count, sum and the newest deals."""
    base = select(Deal).join(Client, Client.id == Deal.client_id).where(deal_scope(user))
    if manager_id is not None:
        base = base.where(Deal.manager_id == manager_id)
    sums = {
        sid: (n, total)
        for sid, n, total in (
            await session.execute(
                base.with_only_columns(
                    Deal.stage_id, func.count(), func.coalesce(func.sum(Deal.amount_minor), 0)
                ).group_by(Deal.stage_id)
            )
        )
    }
    out = []
    for stage in await stages(session, active_only=True):
        deals = (
            await session.scalars(
                _with_refs(
                    base.where(Deal.stage_id == stage.id)
                    .order_by(Deal.updated_at.desc(), Deal.id.desc())
                    .limit(per_stage)
                )
            )
        ).all()
        n, total = sums.get(stage.id, (0, 0))
        out.append((stage, n, int(total), list(deals)))
    return out


async def card_communications(session: AsyncSession, user: User, deal: Deal) -> list[Communication]:
    """The client's communications, those linked to this deal first, newest first; none
    for a user who may see the deal but not its client (another manager's card)."""
    if not may_see_client_of(user, deal.client.manager_id):
        return []
    linked_first = case((Communication.deal_id == deal.id, 0), else_=1)
    rows = await session.scalars(
        select(Communication)
        .where(Communication.client_id == deal.client_id)
        .options(
            selectinload(Communication.user),
            selectinload(Communication.comments).selectinload(CommunicationComment.user),
        )
        .order_by(linked_first, Communication.occurred_at.desc(), Communication.id.desc())
        .limit(CARD_COMMUNICATIONS)
    )
    return list(rows.all())
