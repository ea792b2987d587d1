"""Deals board (drag between stages, Lost asks the reason) and task reminders with snooze."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from e2e.helpers import login, new_context, shoot
from playwright.async_api import Browser, Locator, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.server import RunningApi

from crm_api.accounts.models import User
from crm_api.sales.models import Deal, DealStage
from crm_api.tasks.models import Task


async def drag(page: Page, source: Locator, target: Locator) -> None:
    """A real pointer drag in small steps, as SortableJS expects from a hand."""
    await source.scroll_into_view_if_needed()
    box = await source.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 20)
    await page.mouse.down()
    # A first short move starts the drag, as a hand does: the Won and Lost zones float into
    # the window only then.
    await page.mouse.move(box["x"] + box["width"] / 2 + 8, box["y"] + 28, steps=4)
    await target.scroll_into_view_if_needed()
    to = await target.bounding_box()
    assert to is not None
    await page.mouse.move(to["x"] + to["width"] / 2, to["y"] + min(30, to["height"] / 2), steps=12)
    await page.mouse.up()


# The element a click at the middle of the card's lower edge would land on is the card's.
_TAKES_CLICK = """(el) => {
    const box = el.getBoundingClientRect()
    const hit = document.elementFromPoint(box.left + box.width / 2, box.bottom - 4)
    return hit !== null && el.contains(hit)
}"""


async def test_drag_deals_across_stages_and_lose_one_with_a_reason(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession]
) -> None:
    context = await new_context(browser, app, "ru")
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1")
    await page.goto("/deals")
    board = page.get_by_test_id("deals-board")
    await expect(board.locator("[data-deal]").first).to_be_visible()
    await shoot(page, "deals-ru")
    # The Won and Lost zones cover no card, in a window shorter than the board: the last of
    # each column takes a click.
    await page.set_viewport_size({"width": 1366, "height": 560})
    for column in await board.locator("section").all():
        last = column.locator("[data-deal]").last
        if await last.count():
            await last.scroll_into_view_if_needed()
            assert await last.evaluate(_TAKES_CLICK), await last.get_attribute("data-deal")
    await page.set_viewport_size({"width": 1366, "height": 900})

    first = board.locator("section").first
    second = board.locator("section").nth(1)
    card = first.locator("[data-deal]").first
    deal_id = int(await card.get_attribute("data-deal") or 0)
    async with page.expect_response(lambda r: "/deals/board" in r.url):  # reloaded after
        async with page.expect_response(lambda r: r.url.endswith(f"/deals/{deal_id}/move")) as mv:
            await drag(page, card, second.locator(".cards"))
        assert (await mv.value).ok
    await expect(second.locator(f"[data-deal='{deal_id}']")).to_be_visible()
    async with db() as session:
        deal = await session.get(Deal, deal_id)
        stage = await session.get(DealStage, deal.stage_id)  # type: ignore[union-attr]
    assert stage is not None and stage.position == 1

    # Into the Lost zone: the reason is asked; cancelling leaves the deal open.
    moved = second.locator(f"[data-deal='{deal_id}']")
    lost_zone = page.get_by_test_id("drop-lost").locator(".zone-drop")
    await drag(page, moved, lost_zone)
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_text("Почему сделка не реализована?")).to_be_visible()
    save = dialog.get_by_role("button", name="Сохранить")
    await expect(save).to_be_disabled()  # no reason, no loss
    async with page.expect_response(lambda r: "/deals/board" in r.url):
        await dialog.get_by_role("button", name="Отмена").click()
    await expect(dialog).to_have_count(0)  # the closing modal's mask no longer covers the board
    await expect(moved).to_be_visible()

    await drag(page, moved, lost_zone)
    await dialog.get_by_label("Почему сделка не реализована?").fill("Выбрали конкурента")
    async with page.expect_response(lambda r: r.url.endswith(f"/deals/{deal_id}/close")) as closing:
        await save.click()
    assert (await closing.value).ok
    await expect(board.locator(f"[data-deal='{deal_id}']")).to_have_count(0)
    async with db() as session:
        deal = await session.get(Deal, deal_id)
    assert deal is not None and deal.stage_kind == "lost"
    assert deal.lost_reason == "Выбрали конкурента"
    await context.close()


async def test_reminder_pops_and_snoozes(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession]
) -> None:
    context = await new_context(browser, app, "en")
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1", "en")
    await page.goto("/tasks")
    # The reminder is a frame: the socket must be open before it goes off, or it is lost.
    await expect(page.get_by_test_id("my-status")).to_have_text("Online")
    async with db() as session:
        manager = await session.scalar(select(User).where(User.username == "manager"))
        assert manager is not None
        now = datetime.now(UTC)
        task = Task(
            title="Call back about the invoice",
            assignee_id=manager.id,
            created_by_id=manager.id,
            due_at=now + timedelta(minutes=5),
            remind_at=now,
            source="manual",
        )
        session.add(task)
        await session.commit()
        task_id = task.id

    reminder = page.get_by_test_id("reminder")
    await expect(page.get_by_text("Call back about the invoice").first).to_be_visible()
    await expect(reminder).to_be_visible()
    await shoot(page, "tasks-reminder-en")
    await reminder.get_by_role("button", name="Snooze 10 min").click()
    await expect(reminder).to_have_count(0)
    async with db() as session:
        snoozed = await session.get(Task, task_id)
    assert snoozed is not None and snoozed.remind_at is not None
    assert snoozed.remind_at.replace(tzinfo=UTC) > now + timedelta(minutes=9)
    # The task is in today's column and can be marked done.
    today = page.get_by_test_id("tasks-today")
    await today.get_by_role("button", name="Done: Call back about the invoice").click()
    await expect(today.get_by_text("Call back about the invoice")).to_have_count(0)
    await context.close()
