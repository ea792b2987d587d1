from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from crm_api.accounts.models import Role, User
from crm_api.accounts.permissions import Permission
from crm_api.platform.deps import SessionDep, require
from crm_api.platform.schemas import Id, ItemList
from crm_api.sales import plans
from crm_api.sales.money import from_minor
from crm_api.sales.schemas import PlanPublic, PlanSet

router = APIRouter(prefix="/plans", tags=["plans"])
Reader = Annotated[User, require(Permission.PLANS_READ)]
Manager = Annotated[User, require(Permission.PLANS_MANAGE)]
Month = Annotated[str, Query(pattern=r"^\d{4}-\d{2}$")]


@router.get("", operation_id="list_plans")
async def list_plans(
    session: SessionDep,
    user: Reader,
    month_from: Month,
    month_to: Month,
    user_id: Annotated[list[Id] | None, Query()] = None,
) -> ItemList[PlanPublic]:
    ids = [user.id] if user.role is Role.MANAGER else user_id
    rows = await plans.list_plans(
        session,
        first=plans.month_start(month_from),
        last=plans.month_start(month_to),
        user_ids=ids,
    )
    return ItemList(
        items=[
            PlanPublic(user_id=p.user_id, month=p.month, amount=from_minor(p.amount_minor))
            for p in rows
        ]
    )


@router.put("/{user_id}/{month}", operation_id="set_plan")
async def set_plan(
    user_id: Id, month: str, body: PlanSet, session: SessionDep, _user: Manager
) -> PlanPublic:
    plan = await plans.set_plan(session, user_id, plans.month_start(month), body.amount)
    await session.commit()
    return PlanPublic(user_id=plan.user_id, month=plan.month, amount=from_minor(plan.amount_minor))
