"""Open deals and open tasks of a card, for the screen-pop: one small query each."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.calls.schemas import PopDeal, PopTask
from crm_api.sales.models import Deal, DealStage, StageKind
from crm_api.sales.money import from_minor
from crm_api.tasks.models import Task

CARD_ITEMS = 5


async def open_deals(session: AsyncSession, client_id: int) -> list[PopDeal]:
    rows = await session.execute(
        select(Deal.id, Deal.title, Deal.amount_minor, Deal.currency, Deal.stage_id, DealStage.name)
        .join(DealStage, DealStage.id == Deal.stage_id)
        .where(Deal.client_id == client_id, Deal.stage_kind == StageKind.OPEN)
        .order_by(Deal.updated_at.desc(), Deal.id.desc())
        .limit(CARD_ITEMS)
    )
    return [
        PopDeal(
            id=deal_id,
            title=title,
            amount=str(from_minor(minor)),
            currency=currency,
            stage_id=stage_id,
            stage=stage,
        )
        for deal_id, title, minor, currency, stage_id, stage in rows
    ]


async def open_tasks(session: AsyncSession, client_id: int) -> list[PopTask]:
    rows = await session.execute(
        select(
            Task.id, Task.title, Task.due_at, Task.assignee_id, Task.deal_id, Task.kind, Task.params
        )
        .where(Task.client_id == client_id, Task.done_at.is_(None))
        .order_by(Task.due_at.is_(None), Task.due_at, Task.id)
        .limit(CARD_ITEMS)
    )
    return [
        PopTask(
            id=task_id,
            title=title,
            due_at=due,
            assignee_id=assignee_id,
            deal_id=deal_id,
            kind=kind,
            params=params,
        )
        for task_id, title, due, assignee_id, deal_id, kind, params in rows
    ]
