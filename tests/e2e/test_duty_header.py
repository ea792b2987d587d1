"""The header's "on shift" follows the schedule: off while the operator is on sick leave,
on from the minute their extra shift begins, without a reload."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from e2e.helpers import login, new_context
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.server import RunningApi

from crm_api.accounts.models import User
from crm_api.schedules import service as schedules
from crm_api.schedules.models import ExceptionKind

WORDS = {"ru": {"on": "на смене", "off": "не на смене"}, "en": {"on": "on duty", "off": "off duty"}}


# Up to 90 s until the shift begins, then the turn.
@pytest.mark.timeout(240)
@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_the_header_turns_on_shift_when_the_shift_begins(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], lang: str
) -> None:
    # The first full minute at least 30 s away: time to sign in while still off.
    now = datetime.now(UTC)
    turn = (now + timedelta(seconds=90)).replace(second=0, microsecond=0)
    async with db() as session:
        operator = await session.scalar(select(User).where(User.username == "operator"))
        assert operator is not None
        # Whatever the weekly pattern says at this hour: off until `turn`, on after it.
        await schedules.add_exception(
            session, operator.id, ExceptionKind.SICK, now - timedelta(hours=1), turn, None, None
        )
        await schedules.add_exception(
            session, operator.id, ExceptionKind.EXTRA, turn, turn + timedelta(hours=1), None, None
        )
        await session.commit()
    w = WORDS[lang]
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "operator", "operator-demo-1", lang)
    duty = page.get_by_test_id("my-duty")
    await expect(duty).to_have_text(w["off"])
    assert datetime.now(UTC) < turn  # seen before the shift began
    await asyncio.sleep((turn - datetime.now(UTC)).total_seconds())
    # Asked again at the full minute, not at the next tick of a minute-long timer that
    # began at sign-in (25 s: room for a slow request on a busy machine).
    await expect(duty).to_have_text(w["on"], timeout=25_000)
    await context.close()
