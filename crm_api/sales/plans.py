"""Sales plans: one amount per manager per calendar month."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import User
from crm_api.platform.errors import InvalidInput
from crm_api.sales.models import SalesPlan
from crm_api.sales.money import to_minor


def month_start(value: str) -> date:
    """`2026-11` (or any date in the month) → the first day of that month."""
    try:
        parsed = date.fromisoformat(value + "-01" if len(value) == 7 else value)
    except ValueError as exc:
        raise InvalidInput("month", f"expected YYYY-MM, got {value!r}") from exc
    return parsed.replace(day=1)


async def set_plan(session: AsyncSession, user_id: int, month: date, amount: Decimal) -> SalesPlan:
    if await session.get(User, user_id) is None:
        raise InvalidInput("user_id", f"unknown user {user_id}")
    plan = await session.scalar(
        select(SalesPlan).where(SalesPlan.user_id == user_id, SalesPlan.month == month)
    )
    if plan is None:
        plan = SalesPlan(user_id=user_id, month=month, amount_minor=to_minor(amount))
        session.add(plan)
    else:
        plan.amount_minor = to_minor(amount)
    await session.flush()
    return plan


async def list_plans(
    session: AsyncSession, *, first: date, last: date, user_ids: list[int] | None
) -> list[SalesPlan]:
    q = select(SalesPlan).where(SalesPlan.month >= first, SalesPlan.month <= last)
    if user_ids is not None:
        q = q.where(SalesPlan.user_id.in_(user_ids))
    return list((await session.scalars(q.order_by(SalesPlan.month, SalesPlan.user_id))).all())
