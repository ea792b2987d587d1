"""Demo deals, tasks, shifts and plans for `callcard seed-demo`, so the board, the
calendar and the reports have something to show."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import User
from crm_api.clients.models import Client
from crm_api.platform.db.base import utcnow
from crm_api.sales import service as deals
from crm_api.sales.models import SalesPlan, StageKind
from crm_api.sales.types import NewDeal
from crm_api.tasks.models import Task

TITLES = ("Поставка оборудования", "Годовой сервис", "Пробная партия", "Расширение лицензии")
LOST_REASONS = ("Дорого", "Выбрали конкурента", "Нет бюджета")


async def seed_sales(
    session: AsyncSession,
    admin: User,
    managers: list[User],
    night: User | None,
    clients: list[Client],
    rng: random.Random,
) -> None:
    now = utcnow()
    month = now.date().replace(day=1)
    for m in [*managers, *([night] if night else [])]:
        session.add(SalesPlan(user_id=m.id, month=month, amount_minor=50_000_000))
    open_stages = [s for s in await deals.stages(session) if s.kind is StageKind.OPEN]
    owned = [c for c in clients if c.manager_id is not None]
    for i, client in enumerate(owned[:30]):
        created: datetime = now - timedelta(days=rng.randint(1, 40), hours=rng.randint(0, 8))
        deal = await deals.create_deal(
            session,
            admin,
            NewDeal(
                client_id=client.id,
                title=TITLES[i % len(TITLES)],
                amount=Decimal(rng.randint(10, 500) * 1000),
                manager_id=client.manager_id,
            ),
            at=created,
        )
        at = created
        for stage in open_stages[1 : rng.randint(1, len(open_stages))]:
            at = at + timedelta(hours=rng.randint(2, 48))
            if at >= now:
                break
            await deals.move_deal(session, admin, deal.id, stage.id, at=at)
        outcome = rng.random()
        at = at + timedelta(hours=rng.randint(2, 72))
        if outcome < 0.3 and at < now:
            await deals.close_deal(session, admin, deal.id, outcome="won", at=at)
        elif outcome < 0.45 and at < now:
            reason = rng.choice(LOST_REASONS)
            await deals.close_deal(session, admin, deal.id, outcome="lost", reason=reason, at=at)
        elif i % 4 == 0:
            session.add(
                Task(
                    title="Перезвонить по сделке",
                    client_id=client.id,
                    deal_id=deal.id,
                    assignee_id=client.manager_id,
                    created_by_id=admin.id,
                    due_at=now + timedelta(hours=2 + i),
                    remind_at=now + timedelta(minutes=2 + i),
                )
            )
    await session.flush()
