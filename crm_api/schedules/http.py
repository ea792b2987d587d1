from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import ServicesDep, SessionDep, require
from crm_api.platform.schemas import Day, Id, ItemList
from crm_api.schedules import routing_state
from crm_api.schedules import service as schedules
from crm_api.schedules.schemas import (
    DutyPublic,
    ExceptionCreate,
    ExceptionPublic,
    OnDutyPublic,
    ShiftCreate,
    ShiftPublic,
)

router = APIRouter(prefix="/schedules", tags=["schedules"])
Reader = Annotated[User, require(Permission.SCHEDULES_READ)]
Manager = Annotated[User, require(Permission.SCHEDULES_MANAGE)]


@router.get("/shifts", operation_id="list_shifts")
async def list_shifts(
    session: SessionDep, _user: Reader, user_id: Id | None = None
) -> ItemList[ShiftPublic]:
    shifts = await schedules.list_shifts(session, user_id)
    return ItemList(items=[ShiftPublic.model_validate(s) for s in shifts])


@router.post("/shifts", status_code=201, operation_id="create_shift")
async def create_shift(
    body: ShiftCreate, session: SessionDep, services: ServicesDep, _user: Manager
) -> ShiftPublic:
    shift = await schedules.add_shift(
        session, body.user_id, body.weekday, body.starts, body.ends, body.overnight
    )
    await session.commit()
    routing_state.forget_roster(services.sessions)
    return ShiftPublic.model_validate(shift)


@router.delete("/shifts/{shift_id}", status_code=204, operation_id="delete_shift")
async def delete_shift(
    shift_id: Id, session: SessionDep, services: ServicesDep, _user: Manager
) -> None:
    await schedules.delete_shift(session, shift_id)
    await session.commit()
    routing_state.forget_roster(services.sessions)


@router.get("/exceptions", operation_id="list_schedule_exceptions")
async def list_exceptions(
    session: SessionDep,
    services: ServicesDep,
    _user: Reader,
    start: Day,
    end: Day,
    user_id: Id | None = None,
) -> ItemList[ExceptionPublic]:
    a, b = schedules.day_bounds(start, end, services.settings.tz)
    rows = await schedules.list_exceptions(session, a, b, user_id)
    return ItemList(items=[ExceptionPublic.model_validate(r) for r in rows])


@router.post("/exceptions", status_code=201, operation_id="create_schedule_exception")
async def create_exception(
    body: ExceptionCreate, session: SessionDep, services: ServicesDep, _user: Manager
) -> ExceptionPublic:
    row = await schedules.add_exception(
        session,
        body.user_id,
        body.kind,
        body.starts_at,
        body.ends_at,
        body.other_user_id,
        body.note,
    )
    await session.commit()
    routing_state.forget_roster(services.sessions)
    return ExceptionPublic.model_validate(row)


@router.delete(
    "/exceptions/{exception_id}", status_code=204, operation_id="delete_schedule_exception"
)
async def delete_exception(
    exception_id: Id, session: SessionDep, services: ServicesDep, _user: Manager
) -> None:
    await schedules.delete_exception(session, exception_id)
    await session.commit()
    routing_state.forget_roster(services.sessions)


@router.get("/calendar", operation_id="schedule_calendar")
async def calendar(
    session: SessionDep,
    services: ServicesDep,
    _user: Reader,
    start: Day,
    end: Day,
    user_id: Annotated[list[Id] | None, Query()] = None,
) -> ItemList[DutyPublic]:
    """Who is on duty when, day by day of the company calendar, in its time zone."""
    tz = services.settings.tz
    a, b = schedules.day_bounds(start, end, tz)
    shifts, absences = await schedules.load(session, a - schedules.DAY, b, user_id)
    found = schedules.duties(shifts, absences, a, b, tz)
    if user_id:
        found = [d for d in found if d.user_id in user_id]
    return ItemList(
        items=[
            DutyPublic(
                user_id=d.user_id,
                starts_at=d.starts_at.astimezone(tz),
                ends_at=d.ends_at.astimezone(tz),
            )
            for d in found
        ]
    )


@router.get("/on-duty", operation_id="on_duty")
async def on_duty(
    session: SessionDep, services: ServicesDep, _user: Reader, at: AwareDatetime | None = None
) -> OnDutyPublic:
    tz = services.settings.tz
    when: datetime = at or utcnow()
    shifts, absences = await schedules.load(session, when - 2 * schedules.DAY, when + schedules.DAY)
    return OnDutyPublic(at=when, user_ids=schedules.on_duty(shifts, absences, when, tz))
