"""A manager's day: find a client by the last digits of a number (starting with 8), open
the card, make a deal there, a task with a reminder, two SMS in a row, another deal on the
board in a stage, and win it: its "deal idle" task, reminded in the user's language,
leaves the task list open in another tab."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from e2e.helpers import choose, login, new_context, same_site, shoot_widths
from playwright.async_api import Browser, expect
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.server import RunningApi

from crm_api.accounts.models import User
from crm_api.clients.directories.models import LeadSource
from crm_api.clients.timeline.models import Communication
from crm_api.messages.models import OutboxMessage
from crm_api.sales.models import Deal
from crm_api.tasks.models import Task
from crm_api.tasks.reminders import run_stale_rule

WORDS = {
    "ru": {
        "found": "Клиентов: 1",
        "title": "Что продаём",
        "amount": "Сумма",
        "source": "Источник",
        "create": "Создать сделку",
        "client": "Клиент",
        "won": "Успешно",
        "edit": "Изменить",
        "idle": "Сделка без движения 7 дн.: Сервисный договор",
        "what": "Что сделать",
        "create_task": "Создать задачу",
        "send": "Отправить",
        "online": "В сети",
    },
    "en": {
        "found": "1 client",
        "title": "What is sold",
        "amount": "Amount",
        "source": "Lead source",
        "create": "Create deal",
        "client": "Client",
        "won": "Won",
        "edit": "Edit",
        "idle": "Deal idle for 7 days: Сервисный договор",
        "what": "What to do",
        "create_task": "Create task",
        "send": "Send",
        "online": "Online",
    },
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_a_managers_day(
    wired_app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], lang: str
) -> None:
    w, app = WORDS[lang], wired_app
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1", lang)
    made = await page.request.post(
        "/api/v1/clients",
        data={"name": "Кузнецова Алла", "phones": [{"number": "+7 903 838-71-52"}]},
        headers=same_site(page),
    )
    assert made.ok, await made.text()
    client_id = (await made.json())["id"]

    # "838 71 52": the tail of +7 903 838-71-52, not "+7 38 24 30".
    await page.goto("/clients")
    await page.get_by_role("searchbox").fill("838 71 52")
    await expect(page.get_by_test_id("clients-total")).to_have_text(w["found"])
    await shoot_widths(page, f"clients-tail-search-{lang}")
    await page.get_by_test_id("clients-table").get_by_role("link", name="Кузнецова Алла").click()
    await expect(page.get_by_test_id("client-name")).to_have_text("Кузнецова Алла")

    # "+ Deal" on the card: the client is given; manager and source default sensibly.
    await page.get_by_test_id("add-deal").click()
    form = page.get_by_test_id("deal-form")
    await form.get_by_label(w["title"]).fill("Кондиционер в офис")
    await form.get_by_label(w["amount"]).fill("150000")
    await choose(page, w["source"], "Рекомендация")
    await shoot_widths(page, f"card-new-deal-{lang}")
    await form.get_by_role("button", name=w["create"]).click()
    await expect(form).to_be_hidden()
    await expect(page.get_by_test_id("card-deals")).to_contain_text("Кондиционер в офис")

    # A task with its reminder (15 minutes before it is due, by default).
    await page.get_by_test_id("add-task").click()
    form = page.get_by_test_id("task-form")
    await form.get_by_label(w["what"]).fill("Отправить КП")
    await form.get_by_role("button", name=w["create_task"]).click()
    await expect(form).to_be_hidden()
    await expect(page.get_by_test_id("card-tasks")).to_contain_text("Отправить КП")

    # Two SMS in a row (the second used to fail with a 500).
    sms = page.get_by_test_id("phones").get_by_role("button", name=re.compile("SMS"))
    timeline = page.get_by_test_id("timeline")
    for text in ("Добрый день! КП во вложении", "Жду ответа до пятницы"):
        await sms.first.click()
        dialog = page.get_by_role("dialog")
        await dialog.get_by_test_id("message-text").locator("textarea").fill(text)
        await dialog.get_by_role("button", name=w["send"]).click()
        await expect(dialog).to_be_hidden()
        await expect(timeline.locator("[data-kind=sms]", has_text=text)).to_have_count(1)
    await expect(page.locator(".n-message--error-type")).to_have_count(0)
    await shoot_widths(page, f"card-managers-day-{lang}")

    # "+ Deal" in the board's second stage: the client is found by name.
    await page.goto("/deals")
    board = page.get_by_test_id("deals-board")
    second = board.locator("section").nth(1)
    await second.get_by_test_id("add-deal").click()
    form = page.get_by_test_id("deal-form")
    await form.get_by_label(w["client"]).click()
    await page.keyboard.type("Кузнецова")
    await page.locator(".n-base-select-option", has_text="Кузнецова Алла").click()
    await form.get_by_label(w["title"]).fill("Сервисный договор")
    await form.get_by_label(w["amount"]).fill("24000")
    await form.get_by_role("button", name=w["create"]).click()
    await expect(form).to_be_hidden()
    card = second.locator("[data-deal]", has_text="Сервисный договор")
    await expect(card).to_be_visible()
    await shoot_widths(page, f"deals-board-{lang}")

    # A week without news: the deal gets its "deal idle" task, reminded at once (worded in
    # the user's language from the frame's kind) and listed in another tab.
    await expect(page.get_by_test_id("my-status")).to_have_text(w["online"])
    week_ago = datetime.now(UTC) - timedelta(days=8)
    async with db() as session:
        await session.execute(
            update(Deal).where(Deal.title == "Сервисный договор").values(last_activity_at=week_ago)
        )
        await session.execute(  # the SMS too: no news from either side
            update(Communication)
            .where(Communication.client_id == client_id)
            .values(occurred_at=week_ago)
        )
        await session.commit()
    assert await run_stale_rule(app.app.state.services) == 1
    reminder = page.locator(".n-notification", has_text=w["idle"])
    await expect(reminder.get_by_test_id("reminder")).to_be_visible()
    tasks_tab = await context.new_page()
    await tasks_tab.goto("/tasks")
    idle = tasks_tab.locator("main li", has_text=w["idle"])
    await expect(idle).to_have_count(1)

    # Won from the card's menu (the keyboard way of dragging): the idle task is done.
    await card.get_by_role("button").click()
    await page.locator(".n-dropdown-option", has_text=w["won"]).click()
    await expect(card).to_have_count(0)
    await expect(idle).to_have_count(0)  # live, without a reload

    async with db() as session:
        deals = (await session.scalars(select(Deal).where(Deal.client_id == client_id))).all()
        manager = await session.scalar(select(User).where(User.username == "manager"))
        source = await session.scalar(select(LeadSource).where(LeadSource.name == "Рекомендация"))
    assert manager is not None and source is not None
    by_title = {d.title: d for d in deals}
    office, service = by_title["Кондиционер в офис"], by_title["Сервисный договор"]
    assert (office.manager_id, office.lead_source_id) == (manager.id, source.id)
    assert office.amount_minor == 15_000_000  # kopecks
    assert service.manager_id == manager.id and service.stage_kind == "won"
    async with db() as session:
        idle_task = await session.scalar(select(Task).where(Task.deal_id == service.id))
    assert idle_task is not None and idle_task.done_at == service.closed_at
    async with db() as session:
        offer = await session.scalar(select(Task).where(Task.title == "Отправить КП"))
        sent = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.client_id == client_id))
        ).all()
    assert offer is not None and offer.client_id == client_id and offer.assignee_id == manager.id
    assert offer.remind_at is not None and offer.due_at is not None
    assert offer.remind_at < offer.due_at
    assert [m.channel for m in sent] == ["sms", "sms"]
    await context.close()
