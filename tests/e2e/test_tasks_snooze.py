"""Snoozing a task from the task list: the row shows the server's new reminder time at
once, and a task put off past its due time moves out of "overdue"."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from e2e.helpers import login, new_context, shoot_widths
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.server import RunningApi

from crm_api.accounts.models import User
from crm_api.tasks.models import Task

MSK = ZoneInfo("Europe/Moscow")
WORDS = {
    "ru": {"later": "Позже", "10m": "На 10 минут", "tomorrow": "Завтра", "reminder": "Напоминание"},
    "en": {
        "later": "Later",
        "10m": "In 10 minutes",
        "tomorrow": "Tomorrow",
        "reminder": "Reminder",
    },
}


async def _snoozed(
    db: async_sessionmaker[AsyncSession], task_id: int, before: datetime
) -> datetime:
    """The task's reminder time once the snooze reached the database."""
    async with asyncio.timeout(30):
        while True:
            async with db() as session:
                task = await session.get(Task, task_id)
                assert task is not None and task.remind_at is not None
            if task.remind_at < before:
                return task.remind_at
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_snoozing_shows_the_new_time_and_moves_the_task(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], lang: str
) -> None:
    w = WORDS[lang]
    now = datetime.now(UTC)
    async with db() as session:
        manager = await session.scalar(select(User).where(User.username == "manager"))
        assert manager is not None
        late = Task(
            title=f"Отправить договор {lang}",
            assignee_id=manager.id,
            due_at=now - timedelta(hours=1),
            remind_at=now - timedelta(hours=1),
            reminded_at=now - timedelta(hours=1),
        )
        later = Task(
            title=f"Забрать оплату {lang}",
            assignee_id=manager.id,
            due_at=now + timedelta(days=3),
            remind_at=now + timedelta(days=2),
        )
        session.add_all([late, later])
        await session.commit()
        late_id, later_id = late.id, later.id
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1", lang)
    await page.goto("/tasks")
    overdue, upcoming = page.get_by_test_id("tasks-overdue"), page.get_by_test_id("tasks-upcoming")
    late_row = page.locator(f"li[data-task='{late_id}']")
    later_row = page.locator(f"li[data-task='{later_id}']")
    await expect(overdue.locator(late_row)).to_have_count(1)

    # Tomorrow: out of "overdue", due (and reminded) tomorrow at 09:00.
    await late_row.get_by_role("button", name=w["later"]).click()
    await page.locator(".n-dropdown-option:visible", has_text=w["tomorrow"]).click()
    await expect(upcoming.locator(late_row)).to_have_count(1)
    await expect(overdue.locator(late_row)).to_have_count(0)
    await expect(late_row).to_contain_text("09:00")
    await expect(late_row.get_by_test_id("task-remind")).to_have_count(0)  # same as due

    # Ten minutes: the reminder moves, the due time (days away) stays.
    await later_row.get_by_role("button", name=w["later"]).click()
    await page.locator(".n-dropdown-option:visible", has_text=w["10m"]).click()
    remind = await _snoozed(db, later_id, now + timedelta(days=1))
    shown = later_row.get_by_test_id("task-remind")
    await expect(shown).to_contain_text(w["reminder"])
    await expect(shown).to_contain_text(remind.astimezone(MSK).strftime("%H:%M"))
    await expect(upcoming.locator(later_row)).to_have_count(1)
    await shoot_widths(page, f"tasks-snoozed-{lang}")

    async with db() as session:
        moved = await session.get(Task, late_id)
        assert moved is not None and moved.due_at is not None
    local = moved.due_at.astimezone(MSK)
    assert (local.hour, local.minute) == (9, 0) and moved.remind_at == moved.due_at
    await context.close()
