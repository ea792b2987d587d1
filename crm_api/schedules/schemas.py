"""Wire shapes of work schedules and who is on duty."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, Field

from crm_api.platform.schemas import ApiModel, Id, WallTime
from crm_api.schedules.models import ExceptionKind


class ShiftCreate(ApiModel):
    user_id: Id
    weekday: Annotated[int, Field(ge=0, le=6)]
    starts: WallTime
    ends: WallTime
    overnight: bool = False  # ends on the next day


class ShiftPublic(ApiModel):
    id: int
    user_id: int
    weekday: int
    starts: WallTime
    minutes: int


class ExceptionCreate(ApiModel):
    user_id: Id
    kind: ExceptionKind
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    other_user_id: Id | None = None
    note: Annotated[str | None, Field(max_length=300)] = None


class ExceptionPublic(ApiModel):
    id: int
    user_id: int
    kind: ExceptionKind
    starts_at: datetime
    ends_at: datetime
    other_user_id: int | None
    note: str | None


class DutyPublic(ApiModel):
    user_id: int
    starts_at: datetime  # in the company's time zone
    ends_at: datetime


class OnDutyPublic(ApiModel):
    at: datetime
    user_ids: list[int]
