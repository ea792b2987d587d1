"""Snoozing a reminder, with a controlled clock, on the company's calendar."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from crm_api.platform.errors import InvalidInput
from crm_api.tasks.service import snooze_until

MSK = ZoneInfo("Europe/Moscow")
MORNING = time(9)


def test_presets() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 15:00 in Moscow
    assert snooze_until("10m", now, MSK, MORNING) == datetime(2026, 11, 23, 12, 10, tzinfo=UTC)
    assert snooze_until("1h", now, MSK, MORNING) == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    assert snooze_until("tomorrow", now, MSK, MORNING) == datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def test_tomorrow_is_the_company_calendars_tomorrow() -> None:
    # 22:30 UTC on the 23rd is already 01:30 on the 24th in Moscow: tomorrow is the 25th.
    late = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)
    assert snooze_until("tomorrow", late, MSK, MORNING) == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def test_unknown_preset() -> None:
    with pytest.raises(InvalidInput):
        snooze_until("later", datetime(2026, 1, 1, tzinfo=UTC), MSK, MORNING)
