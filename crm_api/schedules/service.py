"""Work schedules: a weekly pattern of shifts per manager plus dated exceptions.

The arithmetic is pure (tested with a controlled clock): weekly shifts are laid out on
the company's calendar in its time zone, extra and swapped-in shifts are added, vacation,
sick days and swapped-out time are cut away. A night shift runs past midnight into the
next day and belongs to the day it started on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import User
from crm_api.platform.errors import Conflict, InvalidInput, NotFound
from crm_api.schedules.models import ExceptionKind, ScheduleException, Shift

WEEK_MINUTES = 7 * 24 * 60
DAY = timedelta(days=1)
OFF_KINDS = frozenset({ExceptionKind.VACATION, ExceptionKind.SICK, ExceptionKind.SWAP})


@dataclass(frozen=True, slots=True)
class WeeklyShift:
    user_id: int
    weekday: int  # 0 = Monday
    starts: time
    minutes: int


@dataclass(frozen=True, slots=True)
class Absence:
    """An exception to the weekly pattern, in UTC."""

    user_id: int
    kind: ExceptionKind
    starts_at: datetime
    ends_at: datetime
    other_user_id: int | None = None


@dataclass(frozen=True, slots=True)
class Duty:
    """One stretch of time a user is on duty, in UTC."""

    user_id: int
    starts_at: datetime
    ends_at: datetime


def shift_length(starts: time, ends: time, *, overnight: bool) -> int:
    """Minutes from `starts` to `ends`; a shift ending at or before its start is a night
    shift only when the caller says so, otherwise it is a mistake."""
    start_min = starts.hour * 60 + starts.minute
    end_min = ends.hour * 60 + ends.minute
    if overnight:
        if end_min > start_min:
            raise InvalidInput("ends", "an overnight shift must end at or before its start time")
        return end_min + 24 * 60 - start_min
    if end_min <= start_min:
        raise InvalidInput("ends", "the shift ends before it starts (overnight: true for a night)")
    return end_min - start_min


def _week_span(shift: WeeklyShift) -> tuple[int, int]:
    start = shift.weekday * 24 * 60 + shift.starts.hour * 60 + shift.starts.minute
    return start, start + shift.minutes


def overlapping(new: WeeklyShift, existing: Iterable[WeeklyShift]) -> WeeklyShift | None:
    """The first of the user's shifts that `new` overlaps, the week wrapping around."""
    a0, a1 = _week_span(new)
    for other in existing:
        b0, b1 = _week_span(other)
        for shift_by in (-WEEK_MINUTES, 0, WEEK_MINUTES):
            if a0 < b1 + shift_by and b0 + shift_by < a1:
                return other
    return None


def _utc(local_day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(local_day, at, tzinfo=tz).astimezone(UTC)


def weekly_duties(
    shifts: Sequence[WeeklyShift], start: datetime, end: datetime, tz: ZoneInfo
) -> list[Duty]:
    """Weekly shifts laid out between `start` and `end` (a shift begun the day before
    `start` still counts: it may cross midnight)."""
    first = start.astimezone(tz).date() - DAY
    last = end.astimezone(tz).date()
    out = []
    day = first
    while day <= last:
        for s in shifts:
            if s.weekday == day.weekday():
                # Wall-clock length: a shift lasts its minutes on the local clock.
                begins = datetime.combine(day, s.starts)
                finish = begins + timedelta(minutes=s.minutes)
                a = begins.replace(tzinfo=tz).astimezone(UTC)
                b = finish.replace(tzinfo=tz).astimezone(UTC)
                if a < end and b > start:
                    out.append(Duty(s.user_id, a, b))
        day += DAY
    return out


def _subtract(duty: Duty, cuts: Sequence[tuple[datetime, datetime]]) -> list[Duty]:
    pieces = [duty]
    for c0, c1 in cuts:
        nxt = []
        for p in pieces:
            if c1 <= p.starts_at or c0 >= p.ends_at:
                nxt.append(p)
                continue
            if p.starts_at < c0:
                nxt.append(Duty(p.user_id, p.starts_at, c0))
            if c1 < p.ends_at:
                nxt.append(Duty(p.user_id, c1, p.ends_at))
        pieces = nxt
    return pieces


def duties(
    shifts: Sequence[WeeklyShift],
    absences: Sequence[Absence],
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
) -> list[Duty]:
    """Who is on duty when between `start` and `end`, sorted by start then user."""
    base = weekly_duties(shifts, start, end, tz)
    for a in absences:
        if a.kind is ExceptionKind.EXTRA:
            base.append(Duty(a.user_id, a.starts_at, a.ends_at))
        elif a.kind is ExceptionKind.SWAP and a.other_user_id is not None:
            base.append(Duty(a.other_user_id, a.starts_at, a.ends_at))
    cuts: dict[int, list[tuple[datetime, datetime]]] = {}
    for a in absences:
        if a.kind in OFF_KINDS:
            cuts.setdefault(a.user_id, []).append((a.starts_at, a.ends_at))
    out = []
    for d in base:
        for piece in _subtract(d, cuts.get(d.user_id, [])):
            s, e = max(piece.starts_at, start), min(piece.ends_at, end)
            if s < e:
                out.append(Duty(piece.user_id, s, e))
    out.sort(key=lambda d: (d.starts_at, d.user_id))
    return out


def on_duty(
    shifts: Sequence[WeeklyShift], absences: Sequence[Absence], at: datetime, tz: ZoneInfo
) -> list[int]:
    """Users on duty at `at`, in schedule order: whose stretch began first, then by id."""
    window = duties(shifts, absences, at - 2 * DAY, at + timedelta(microseconds=1), tz)
    order: list[int] = []
    for d in window:  # sorted by start already
        if d.starts_at <= at < d.ends_at and d.user_id not in order:
            order.append(d.user_id)
    return order


# --- storage -------------------------------------------------------------------------


def _weekly(row: Shift) -> WeeklyShift:
    return WeeklyShift(row.user_id, row.weekday, row.starts, row.minutes)


def _absence(row: ScheduleException) -> Absence:
    return Absence(row.user_id, row.kind, row.starts_at, row.ends_at, row.other_user_id)


async def load(
    session: AsyncSession, start: datetime, end: datetime, user_ids: Sequence[int] | None = None
) -> tuple[list[WeeklyShift], list[Absence]]:
    """The weekly pattern and the exceptions touching [start, end)."""
    shifts_q = select(Shift)
    exc_q = select(ScheduleException).where(
        ScheduleException.starts_at < end, ScheduleException.ends_at > start
    )
    if user_ids is not None:
        shifts_q = shifts_q.where(Shift.user_id.in_(user_ids))
        exc_q = exc_q.where(
            (ScheduleException.user_id.in_(user_ids))
            | (ScheduleException.other_user_id.in_(user_ids))
        )
    shifts = [_weekly(r) for r in (await session.scalars(shifts_q)).all()]
    absences = [_absence(r) for r in (await session.scalars(exc_q)).all()]
    return shifts, absences


async def _user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


async def add_shift(
    session: AsyncSession, user_id: int, weekday: int, starts: time, ends: time, overnight: bool
) -> Shift:
    await _user(session, user_id)
    if not 0 <= weekday <= 6:
        raise InvalidInput("weekday", "0 (Monday) to 6 (Sunday)")
    new = WeeklyShift(user_id, weekday, starts, shift_length(starts, ends, overnight=overnight))
    existing = (await session.scalars(select(Shift).where(Shift.user_id == user_id))).all()
    clash = overlapping(new, [_weekly(r) for r in existing])
    if clash is not None:
        raise Conflict(
            f"overlaps the shift on weekday {clash.weekday} at {clash.starts:%H:%M}",
            details={"weekday": clash.weekday, "starts": clash.starts.isoformat()},
        ).with_code("shift_overlap")
    row = Shift(user_id=user_id, weekday=weekday, starts=starts, minutes=new.minutes)
    session.add(row)
    await session.flush()
    return row


async def list_shifts(session: AsyncSession, user_id: int | None) -> list[Shift]:
    """Everyone's (or one user's) weekly shifts, by user, weekday and start."""
    q = select(Shift).order_by(Shift.user_id, Shift.weekday, Shift.starts)
    if user_id is not None:
        q = q.where(Shift.user_id == user_id)
    return list((await session.scalars(q)).all())


async def list_exceptions(
    session: AsyncSession, start: datetime, end: datetime, user_id: int | None
) -> list[ScheduleException]:
    """Exceptions overlapping [start, end), earliest first."""
    q = select(ScheduleException).where(
        ScheduleException.starts_at < end, ScheduleException.ends_at > start
    )
    if user_id is not None:
        q = q.where(ScheduleException.user_id == user_id)
    return list((await session.scalars(q.order_by(ScheduleException.starts_at))).all())


async def delete_shift(session: AsyncSession, shift_id: int) -> None:
    result = await session.execute(delete(Shift).where(Shift.id == shift_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"no shift {shift_id}")


async def add_exception(
    session: AsyncSession,
    user_id: int,
    kind: ExceptionKind,
    starts_at: datetime,
    ends_at: datetime,
    other_user_id: int | None,
    note: str | None,
) -> ScheduleException:
    await _user(session, user_id)
    if ends_at <= starts_at:
        raise InvalidInput("ends_at", "the exception ends before it starts")
    if kind is ExceptionKind.SWAP:
        if other_user_id is None or other_user_id == user_id:
            raise InvalidInput("other_user_id", "a swap needs the colleague who takes over")
        await _user(session, other_user_id)
    elif other_user_id is not None:
        raise InvalidInput("other_user_id", "only a swap names a colleague")
    clash = await session.scalar(
        select(ScheduleException).where(
            ScheduleException.user_id == user_id,
            ScheduleException.starts_at < ends_at,
            ScheduleException.ends_at > starts_at,
        )
    )
    if clash is not None:
        raise Conflict(
            f"overlaps the {clash.kind} from {clash.starts_at.isoformat()}",
            details={"exception_id": clash.id},
        ).with_code("exception_overlap")
    row = ScheduleException(
        user_id=user_id,
        kind=kind,
        starts_at=starts_at,
        ends_at=ends_at,
        other_user_id=other_user_id,
        note=note,
    )
    session.add(row)
    await session.flush()
    return row


async def delete_exception(session: AsyncSession, exception_id: int) -> None:
    result = await session.execute(
        delete(ScheduleException).where(ScheduleException.id == exception_id)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"no schedule exception {exception_id}")


def day_bounds(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[first 00:00, last+1 00:00) of the company's calendar, in UTC."""
    if last < first:
        raise InvalidInput("end", "the range ends before it starts")
    if (last - first).days > 92:
        raise InvalidInput("end", "at most 92 days at once")
    return _utc(first, time(0), tz), _utc(last + DAY, time(0), tz)
