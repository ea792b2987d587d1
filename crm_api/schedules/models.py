"""Storage of work schedules (weekly shifts, dated exceptions) and of the routing policy's
round-robin state."""

from __future__ import annotations

import enum
from datetime import datetime, time

from sqlalchemy import BigInteger, ForeignKey, Integer, SmallInteger, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.platform.db.base import Base, str_enum, utcnow


class Shift(Base):
    """A weekly shift: on `weekday` (0 = Monday) from `starts` for `minutes`, in the
    company time zone. A night shift simply runs past midnight into the next day."""

    __tablename__ = "shifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    starts: Mapped[time] = mapped_column(Time)
    minutes: Mapped[int] = mapped_column(Integer)


class ExceptionKind(enum.StrEnum):
    VACATION = "vacation"
    SICK = "sick"
    SWAP = "swap"  # user hands the interval to `other_user_id`
    EXTRA = "extra"  # an extra shift outside the weekly pattern


class ScheduleException(Base):
    __tablename__ = "schedule_exceptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ExceptionKind] = mapped_column(str_enum(ExceptionKind))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    other_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    note: Mapped[str | None] = mapped_column(String(300))


class RouteCounter(Base):
    """The round-robin position shared by every API worker (when there is no Redis)."""

    __tablename__ = "route_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class RouteAsk(Base):
    """Extensions already offered for one PBX call, so a second ask gets the next one."""

    __tablename__ = "route_asks"

    id: Mapped[int] = mapped_column(primary_key=True)
    pbx: Mapped[str] = mapped_column(String(64))  # a call is (pbx, call_id), as in calls
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("pbx", "call_id", "attempt", name="uq_route_asks_pbx_call_attempt"),
    )
