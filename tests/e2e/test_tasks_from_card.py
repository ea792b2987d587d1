"""A task from the card: linked to the client, given to someone, with a reminder time of
its own; a task without a due date is an explicit choice."""

from __future__ import annotations

import pytest
from e2e.helpers import login, new_context, shoot_widths
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.server import RunningApi

from crm_api.accounts.models import User
from crm_api.clients.models import Client
from crm_api.tasks.models import Task

WORDS = {
    "ru": {"what": "Что сделать", "create": "Создать задачу", "no_date": "Без срока"},
    "en": {"what": "What to do", "create": "Create task", "no_date": "No due date"},
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_task_with_a_reminder_and_one_without_a_date_from_the_card(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], lang: str
) -> None:
    w = WORDS[lang]
    async with db() as session:
        manager = await session.scalar(select(User).where(User.username == "manager"))
        assert manager is not None
        client = await session.scalar(
            select(Client).where(Client.manager_id == manager.id).order_by(Client.id)
        )
        assert client is not None
        client_id = client.id
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1", lang)
    await page.goto(f"/clients/{client_id}")
    tasks = page.get_by_test_id("card-tasks")

    await page.get_by_test_id("add-task").click()
    form = page.get_by_test_id("task-form")
    await form.get_by_label(w["what"]).fill(f"Отправить КП {lang}")
    await shoot_widths(page, f"card-new-task-{lang}")
    await form.get_by_role("button", name=w["create"]).click()
    await expect(form).to_be_hidden()
    await expect(tasks).to_contain_text(f"Отправить КП {lang}")

    await page.get_by_test_id("add-task").click()
    await form.get_by_label(w["what"]).fill(f"Уточнить адрес {lang}")
    await form.get_by_text(w["no_date"]).click()
    await form.get_by_role("button", name=w["create"]).click()
    await expect(form).to_be_hidden()
    await expect(tasks.locator("li", has_text=f"Уточнить адрес {lang}")).to_contain_text(
        w["no_date"]
    )

    async with db() as session:
        made = {
            t.title: t
            for t in await session.scalars(select(Task).where(Task.client_id == client_id))
        }
    offer, address = made[f"Отправить КП {lang}"], made[f"Уточнить адрес {lang}"]
    assert offer.assignee_id == manager.id
    assert offer.due_at is not None and offer.remind_at is not None
    assert offer.remind_at < offer.due_at  # its own reminder time, before the due time
    assert address.due_at is None
    await context.close()
