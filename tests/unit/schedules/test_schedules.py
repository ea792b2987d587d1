"""Schedule arithmetic with a controlled clock, in the company's zone (Moscow, UTC+3)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from crm_api.platform.errors import InvalidInput
from crm_api.schedules.models import ExceptionKind
from crm_api.schedules.service import (
    Absence,
    WeeklyShift,
    duties,
    on_duty,
    overlapping,
    shift_length,
)

MSK = ZoneInfo("Europe/Moscow")
# 2026-11-23 is a Monday.
MON, TUE, SUN = 0, 1, 6


def msk(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=MSK).astimezone(UTC)


DAY_A = WeeklyShift(1, MON, time(9), 9 * 60)  # 09:00-18:00
DAY_B = WeeklyShift(2, MON, time(12), 8 * 60)  # 12:00-20:00
NIGHT_C = WeeklyShift(3, SUN, time(22), 8 * 60)  # Sunday 22:00 - Monday 06:00


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (msk(23, 8, 59), []),
        (msk(23, 9, 0), [1]),
        (msk(23, 13, 0), [1, 2]),  # schedule order: whose shift began first
        (msk(23, 18, 0), [2]),  # end is exclusive
        (msk(23, 20, 0), []),
        (msk(22, 23, 30), [3]),  # Sunday night
        (msk(23, 5, 59), [3]),  # ...past midnight into Monday
        (msk(23, 6, 0), []),
        (msk(30, 5, 0), [3]),  # and again a week later
    ],
)
def test_on_duty_by_weekly_pattern(at: datetime, expected: list[int]) -> None:
    assert on_duty([DAY_A, DAY_B, NIGHT_C], [], at, MSK) == expected


def test_vacation_sick_swap_and_extra() -> None:
    shifts = [DAY_A, DAY_B]
    absences = [
        Absence(1, ExceptionKind.VACATION, msk(23, 0), msk(24, 0)),
        Absence(2, ExceptionKind.SWAP, msk(23, 12), msk(23, 16), other_user_id=4),
        Absence(5, ExceptionKind.EXTRA, msk(23, 17), msk(23, 23)),
        Absence(2, ExceptionKind.SICK, msk(23, 19), msk(23, 21)),
    ]
    assert on_duty(shifts, absences, msk(23, 10), MSK) == []
    assert on_duty(shifts, absences, msk(23, 13), MSK) == [4]
    assert on_duty(shifts, absences, msk(23, 16, 30), MSK) == [2]
    assert on_duty(shifts, absences, msk(23, 17, 30), MSK) == [2, 5]
    assert on_duty(shifts, absences, msk(23, 19, 30), MSK) == [5]


def test_calendar_clips_and_cuts() -> None:
    got = duties([DAY_A, NIGHT_C], [], msk(23, 0), msk(24, 0), MSK)
    assert [(d.user_id, d.starts_at, d.ends_at) for d in got] == [
        (3, msk(23, 0), msk(23, 6)),  # the Sunday night shift, clipped to Monday
        (1, msk(23, 9), msk(23, 18)),
    ]


def test_shift_length_and_bad_shapes() -> None:
    assert shift_length(time(9), time(18), overnight=False) == 540
    assert shift_length(time(22), time(6), overnight=True) == 480
    assert shift_length(time(0), time(0), overnight=True) == 1440
    with pytest.raises(InvalidInput, match="ends before it starts"):
        shift_length(time(18), time(9), overnight=False)
    with pytest.raises(InvalidInput, match="overnight"):
        shift_length(time(9), time(18), overnight=True)


def test_overlap_including_the_week_wrap() -> None:
    assert overlapping(WeeklyShift(1, MON, time(17), 120), [DAY_A]) == DAY_A
    assert overlapping(WeeklyShift(1, MON, time(18), 120), [DAY_A]) is None
    # Sunday 22:00 + 8h reaches Monday 06:00: a Monday 05:00 shift overlaps it.
    assert overlapping(WeeklyShift(3, MON, time(5), 60), [NIGHT_C]) == NIGHT_C
    assert overlapping(WeeklyShift(3, MON, time(6), 60), [NIGHT_C]) is None
