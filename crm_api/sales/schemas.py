"""Wire shapes of the sales side: stages, deals, plans.

Money travels as a decimal with two places ("1234.50") and is kept in minor units."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal, cast

from pydantic import AfterValidator, Field

from crm_api.clients.timeline.schemas import CommunicationPublic
from crm_api.platform.schemas import ApiModel, Day, Id, Title, UserRef
from crm_api.sales.models import Deal, StageKind
from crm_api.sales.money import from_minor
from crm_api.sales.types import DealChanges, NewDeal, StageChanges
from crm_api.tasks.schemas import TaskPublic


def _two_places(v: Decimal) -> Decimal:
    if v != v.quantize(Decimal("0.01")):
        raise ValueError("at most two decimal places")
    return v


Money = Annotated[
    Decimal, Field(ge=0, le=Decimal("1e12"), max_digits=15), AfterValidator(_two_places)
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


# --- stages ----------------------------------------------------------------------------


class StagePublic(ApiModel):
    id: int
    code: str | None
    name: str
    name_ru: str | None
    position: int
    kind: StageKind
    is_active: bool


class StageCreate(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    name_ru: Annotated[str | None, Field(max_length=100)] = None
    kind: StageKind = StageKind.OPEN


class StageUpdate(ApiModel):
    name: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    name_ru: Annotated[str | None, Field(max_length=100)] = None
    kind: StageKind | None = None
    is_active: bool | None = None

    def changes(self) -> StageChanges:
        return cast(StageChanges, self.model_dump(exclude_unset=True))


class StageOrder(ApiModel):
    ids: Annotated[list[int], Field(min_length=1, max_length=100)]


# --- deals -----------------------------------------------------------------------------


class DealCreate(ApiModel):
    client_id: Id
    title: Title
    amount: Money = Decimal(0)
    currency: Currency = "RUB"
    manager_id: Id | None = None
    stage_id: Id | None = None  # the first open stage when not given
    lead_source_id: Id | None = None
    expected_close: Day | None = None

    def to_new(self) -> NewDeal:
        return NewDeal(**self.model_dump())


class DealUpdate(ApiModel):
    title: Title | None = None
    amount: Money | None = None
    currency: Currency | None = None
    manager_id: Id | None = None
    lead_source_id: Id | None = None
    expected_close: Day | None = None
    satisfaction: Annotated[int | None, Field(ge=1, le=5)] = None

    def changes(self) -> DealChanges:
        return cast(DealChanges, self.model_dump(exclude_unset=True))


class DealMove(ApiModel):
    stage_id: Id


class DealClose(ApiModel):
    outcome: Literal["won", "lost"]
    reason: Annotated[str | None, Field(max_length=2000)] = None
    satisfaction: Annotated[int | None, Field(ge=1, le=5)] = None


class DealPublic(ApiModel):
    id: int
    client_id: int
    client_name: str
    title: str
    amount: Decimal
    currency: str
    manager: UserRef | None
    stage_id: int
    stage_kind: StageKind
    lead_source_id: int | None
    expected_close: date | None
    lost_reason: str | None
    satisfaction: int | None
    created_at: datetime
    updated_at: datetime
    stage_entered_at: datetime
    closed_at: datetime | None


class StageVisitPublic(ApiModel):
    stage_id: int
    from_stage_id: int | None
    user_id: int | None
    entered_at: datetime
    left_at: datetime | None


class BoardColumn(ApiModel):
    stage: StagePublic
    count: int
    amount: Decimal
    deals: list[DealPublic]


# --- plans -----------------------------------------------------------------------------


class PlanSet(ApiModel):
    amount: Money


class PlanPublic(ApiModel):
    user_id: int
    month: date
    amount: Decimal


class DealCard(ApiModel):
    deal: DealPublic
    history: list[StageVisitPublic]
    communications: list[CommunicationPublic]
    tasks: list[TaskPublic]


# --- presenters ------------------------------------------------------------------------


def deal_public(deal: Deal) -> DealPublic:
    return DealPublic(
        id=deal.id,
        client_id=deal.client_id,
        client_name=deal.client.name,
        title=deal.title,
        amount=from_minor(deal.amount_minor),
        currency=deal.currency,
        manager=UserRef(id=deal.manager.id, full_name=deal.manager.full_name)
        if deal.manager
        else None,
        stage_id=deal.stage_id,
        stage_kind=deal.stage_kind,
        lead_source_id=deal.lead_source_id,
        expected_close=deal.expected_close,
        lost_reason=deal.lost_reason,
        satisfaction=deal.satisfaction,
        created_at=deal.created_at,
        updated_at=deal.updated_at,
        stage_entered_at=deal.stage_entered_at,
        closed_at=deal.closed_at,
    )
