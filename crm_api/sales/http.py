from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.clients.presenters import communication_public
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import Services, ServicesDep, SessionDep, require
from crm_api.platform.schemas import Id, ItemList, Page
from crm_api.sales import notifier
from crm_api.sales import service as deals_domain
from crm_api.sales.models import Deal
from crm_api.sales.money import from_minor
from crm_api.sales.schemas import (
    BoardColumn,
    DealCard,
    DealClose,
    DealCreate,
    DealMove,
    DealPublic,
    DealUpdate,
    StageCreate,
    StageOrder,
    StagePublic,
    StageUpdate,
    StageVisitPublic,
    deal_public,
)
from crm_api.tasks import notifier as tasks_notifier
from crm_api.tasks import service as tasks_domain
from crm_api.tasks.schemas import TaskPublic

router = APIRouter(tags=["deals"])
Reader = Annotated[User, require(Permission.DEALS_READ)]
Writer = Annotated[User, require(Permission.DEALS_WRITE)]
Admin = Annotated[User, require(Permission.DIRECTORIES_MANAGE)]


async def publish_deal(services: Services, session: SessionDep, deal: Deal) -> DealPublic:
    """The deal as it now is (after the commit), also pushed as `deal.updated`."""
    fresh = await deals_domain.load(session, deal.id)
    public = deal_public(fresh)
    await notifier.deal_updated(services.hub, public, fresh.manager_id)
    return public


# --- stages ----------------------------------------------------------------------------


@router.get("/deal-stages", operation_id="list_deal_stages")
async def list_stages(session: SessionDep, _user: Reader) -> ItemList[StagePublic]:
    rows = await deals_domain.stages(session)
    return ItemList(items=[StagePublic.model_validate(s) for s in rows])


@router.post("/deal-stages", status_code=201, operation_id="create_deal_stage")
async def create_stage(body: StageCreate, session: SessionDep, _user: Admin) -> StagePublic:
    stage = await deals_domain.create_stage(
        session, name=body.name, name_ru=body.name_ru, kind=body.kind
    )
    await session.commit()
    return StagePublic.model_validate(stage)


@router.patch("/deal-stages/{stage_id}", operation_id="update_deal_stage")
async def update_stage(
    stage_id: Id, body: StageUpdate, session: SessionDep, _user: Admin
) -> StagePublic:
    stage = await deals_domain.update_stage(session, stage_id, body.changes())
    await session.commit()
    return StagePublic.model_validate(stage)


@router.put("/deal-stages/order", operation_id="reorder_deal_stages")
async def reorder_stages(
    body: StageOrder, session: SessionDep, _user: Admin
) -> ItemList[StagePublic]:
    rows = await deals_domain.reorder_stages(session, body.ids)
    await session.commit()
    return ItemList(items=[StagePublic.model_validate(s) for s in rows])


# --- deals -----------------------------------------------------------------------------


@router.get("/deals", operation_id="list_deals")
async def list_deals(
    session: SessionDep,
    user: Reader,
    stage_id: Id | None = None,
    manager_id: Id | None = None,
    client_id: Id | None = None,
    open_only: bool = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[DealPublic]:
    rows, total = await deals_domain.search(
        session,
        user,
        stage_id=stage_id,
        manager_id=manager_id,
        client_id=client_id,
        open_only=open_only,
        limit=page_size,
        offset=(page - 1) * page_size,
    )
    return Page(items=[deal_public(d) for d in rows], total=total, page=page, page_size=page_size)


@router.get("/deals/board", operation_id="deals_board")
async def board(
    session: SessionDep,
    user: Reader,
    manager_id: Id | None = None,
    per_stage: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ItemList[BoardColumn]:
    columns = await deals_domain.board(session, user, manager_id=manager_id, per_stage=per_stage)
    return ItemList(
        items=[
            BoardColumn(
                stage=StagePublic.model_validate(stage),
                count=n,
                amount=from_minor(total),
                deals=[deal_public(d) for d in deals],
            )
            for stage, n, total, deals in columns
        ]
    )


@router.post("/deals", status_code=201, operation_id="create_deal")
async def create_deal(
    body: DealCreate, session: SessionDep, services: ServicesDep, user: Writer
) -> DealPublic:
    deal = await deals_domain.create_deal(session, user, body.to_new())
    await session.commit()
    return await publish_deal(services, session, deal)


@router.get("/deals/{deal_id}", operation_id="get_deal")
async def get_deal(deal_id: Id, session: SessionDep, user: Reader) -> DealPublic:
    return deal_public(await deals_domain.get_for(session, user, deal_id))


@router.get("/deals/{deal_id}/card", operation_id="get_deal_card")
async def get_deal_card(deal_id: Id, session: SessionDep, user: Reader) -> DealCard:
    """The deal, its stage history, the client's communications (this deal's first) and
    the deal's tasks."""
    deal = await deals_domain.get_for(session, user, deal_id)
    comms = await deals_domain.card_communications(session, user, deal)
    tasks = await tasks_domain.tasks_of_deal(session, deal.id)  # visible deal, visible tasks
    return DealCard(
        deal=deal_public(deal),
        history=[
            StageVisitPublic.model_validate(v) for v in await deals_domain.history(session, deal.id)
        ],
        communications=[communication_public(c) for c in comms],
        tasks=[TaskPublic.model_validate(t) for t in tasks],
    )


@router.get("/deals/{deal_id}/history", operation_id="get_deal_history")
async def get_history(deal_id: Id, session: SessionDep, user: Reader) -> ItemList[StageVisitPublic]:
    deal = await deals_domain.get_for(session, user, deal_id)
    visits = await deals_domain.history(session, deal.id)
    return ItemList(items=[StageVisitPublic.model_validate(v) for v in visits])


@router.patch("/deals/{deal_id}", operation_id="update_deal")
async def update_deal(
    deal_id: Id, body: DealUpdate, session: SessionDep, services: ServicesDep, user: Writer
) -> DealPublic:
    deal = await deals_domain.update_deal(session, user, deal_id, body.changes())
    await session.commit()
    return await publish_deal(services, session, deal)


@router.post("/deals/{deal_id}/move", operation_id="move_deal")
async def move_deal(
    deal_id: Id, body: DealMove, session: SessionDep, services: ServicesDep, user: Writer
) -> DealPublic:
    deal = await deals_domain.move_deal(session, user, deal_id, body.stage_id, at=utcnow())
    await session.commit()
    return await publish_deal(services, session, deal)


@router.post("/deals/{deal_id}/close", operation_id="close_deal")
async def close_deal(
    deal_id: Id, body: DealClose, session: SessionDep, services: ServicesDep, user: Writer
) -> DealPublic:
    deal, idle_done = await deals_domain.close_deal(
        session,
        user,
        deal_id,
        outcome=body.outcome,
        reason=body.reason,
        satisfaction=body.satisfaction,
        at=utcnow(),
    )
    await session.commit()
    for task in idle_done:
        await tasks_notifier.task_updated(services.hub, TaskPublic.model_validate(task))
    return await publish_deal(services, session, deal)
