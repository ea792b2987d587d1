"""Storage for the sales side: deal stages and deals with their stage history, and sales
plans.

Money is kept in minor units (kopecks) as integers, so sums are exact on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_api.accounts.models import User
from crm_api.clients.models import Client
from crm_api.clients.timeline.models import Communication
from crm_api.platform.db.base import Base, str_enum, utcnow


class StageKind(enum.StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


# The seven stages the product ships with; migration 0002 seeds the same rows.
# (code, English name, Russian name, kind)
BUILTIN_STAGES: tuple[tuple[str, str, str, StageKind], ...] = (
    ("unsorted", "Unsorted", "Неразобранное", StageKind.OPEN),
    ("first_contact", "First contact", "Первичный контакт", StageKind.OPEN),
    ("negotiation", "Negotiation", "Переговоры", StageKind.OPEN),
    ("deciding", "Deciding", "Принимают решение", StageKind.OPEN),
    ("contract", "Contract approval", "Согласование договора", StageKind.OPEN),
    ("won", "Won", "Успешно реализовано", StageKind.WON),
    ("lost", "Lost", "Закрыто и не реализовано", StageKind.LOST),
)


class DealStage(Base):
    __tablename__ = "deal_stages"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stable key of a built-in stage; admins may rename it, the code stays.
    code: Mapped[str | None] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_ru: Mapped[str | None] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[StageKind] = mapped_column(str_enum(StageKind))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("deal_stages.id"))
    stage_kind: Mapped[StageKind] = mapped_column(str_enum(StageKind))  # copy, for reports
    lead_source_id: Mapped[int | None] = mapped_column(ForeignKey("lead_sources.id"))
    expected_close: Mapped[date | None] = mapped_column(Date)
    lost_reason: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)  # 1..5
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    stage_entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    # Last thing anyone did about the deal; the stale-deal rule reads it.
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)

    client: Mapped[Client] = relationship()
    stage: Mapped[DealStage] = relationship()
    manager: Mapped[User | None] = relationship(foreign_keys=[manager_id])

    __table_args__ = (
        Index("ix_deals_manager_created", "manager_id", "created_at"),
        Index("ix_deals_created", "created_at"),
        Index("ix_deals_closed", "closed_at"),
        Index("ix_deals_stage", "stage_id"),
        Index("ix_deals_open_activity", "stage_kind", "last_activity_at"),
    )


class DealStageVisit(Base):
    """One stay of a deal in a stage: entered, left (None while it is there)."""

    __tablename__ = "deal_stage_visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("deal_stages.id"))
    from_stage_id: Mapped[int | None] = mapped_column(ForeignKey("deal_stages.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None]
    # The deal's own creation time, copied: the funnel reads a month's cohort of deals
    # straight from this table's index instead of joining all of its history.
    deal_created_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_deal_stage_visits_deal", "deal_id", "entered_at"),
        Index("ix_deal_stage_visits_entered", "entered_at"),
        Index("ix_deal_stage_visits_cohort", "deal_created_at", "deal_id"),
    )


class SalesPlan(Base):
    __tablename__ = "sales_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    month: Mapped[date] = mapped_column(Date)  # the first day of the month
    amount_minor: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("user_id", "month", name="uq_sales_plans_user_month"),)


# The reports count communications per manager and day; migration 0002 adds these to the
# communications table (declared here, beside the reports that need them).
Index("ix_communications_user_time", Communication.user_id, Communication.occurred_at)
Index("ix_communications_occurred", Communication.occurred_at)


def builtin_stage_rows() -> list[dict[str, object]]:
    """The built-in stages as rows (for tests resetting a database to its migrated state)."""
    return [
        {
            "code": code,
            "name": name,
            "name_ru": name_ru,
            "position": i,
            "kind": kind.value,
            "is_active": True,
        }
        for i, (code, name, name_ru, kind) in enumerate(BUILTIN_STAGES)
    ]
