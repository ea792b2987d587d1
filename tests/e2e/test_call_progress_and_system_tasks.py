"""Click-to-call says where it is (the manager's phone rings, then the client is being
dialled), and the tasks the system makes read in the user's language from their kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from e2e.helpers import login, new_context, shoot_widths
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from support.server import RunningApi

from crm_api.accounts.models import User
from crm_api.clients.models import Client
from crm_api.tasks.models import Task, TaskSource
from telephony.ami.simulator import AmiSimulator

WORDS = {
    "ru": {
        "call": "Позвонить",
        "you": "Звоним на ваш телефон…",
        "client": "Набираем клиента…",
        "talking": "Идёт разговор",
        "status": "На звонке",
        "missed": "Перезвонить: {who} — пропущено звонков: 3",
        "stale": "Сделка без движения 7 дн.: Поставка кофе",
    },
    "en": {
        "call": "Call",
        "you": "Calling your phone…",
        "client": "Dialling the client…",
        "talking": "In conversation",
        "status": "On a call",
        "missed": "Call back {who}: 3 missed calls",
        "stale": "Deal idle for 7 days: Поставка кофе",
    },
}


async def _managers_client(db: async_sessionmaker[AsyncSession]) -> tuple[User, Client]:
    async with db() as session:
        manager = await session.scalar(select(User).where(User.username == "manager"))
        assert manager is not None
        client = await session.scalar(
            select(Client)
            .options(selectinload(Client.phones))
            .where(Client.manager_id == manager.id, Client.phones.any())
            .order_by(Client.id)
        )
        assert client is not None
        return manager, client


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_click_to_call_shows_the_phone_ringing_then_the_client_dialled(
    pbx_app: RunningApi,
    pbx: AmiSimulator,
    browser: Browser,
    db: async_sessionmaker[AsyncSession],
    lang: str,
) -> None:
    w = WORDS[lang]
    _, client = await _managers_client(db)
    # The capture at a pace where each step shows for seconds (the client is dialled for
    # about a dozen of its events).
    pbx.originate_pace = 0.35
    context = await new_context(browser, pbx_app, lang)
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1", lang)  # extension 101
    await page.goto(f"/clients/{client.id}")
    await page.get_by_test_id("phones").get_by_role("button", name=w["call"]).first.click()

    panel = page.get_by_test_id("call-panel")  # floating: away from the console
    await expect(panel).to_have_attribute("aria-label", w["you"])
    await expect(page.get_by_test_id("my-status")).to_have_text(w["status"])  # not "incoming"
    await expect(panel).to_have_attribute("aria-label", w["client"], timeout=20_000)
    await expect(panel.get_by_test_id("call-client-name")).to_have_text(client.name)
    await shoot_widths(page, f"card-dialling-{lang}")
    await expect(panel).to_have_attribute("aria-label", w["talking"], timeout=15_000)
    await expect(panel).to_have_attribute("data-state", "ended", timeout=30_000)
    await context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_system_tasks_read_in_the_users_language(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], lang: str
) -> None:
    w = WORDS[lang]
    manager, client = await _managers_client(db)
    soon = datetime.now(UTC) + timedelta(hours=2)
    async with db() as session:
        session.add_all(
            [
                Task(
                    title=client.name,
                    client_id=client.id,
                    assignee_id=manager.id,
                    due_at=soon,
                    source=TaskSource.MISSED_CALL,
                    kind="missed_call",
                    params={"number": client.phones[0].e164, "count": 3},
                ),
                Task(
                    title="Поставка кофе",
                    client_id=client.id,
                    assignee_id=manager.id,
                    due_at=soon,
                    source=TaskSource.STALE_DEAL,
                    kind="stale_deal",
                    params={"deal": "Поставка кофе", "days": 7},
                ),
            ]
        )
        await session.commit()
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1", lang)
    await page.goto("/tasks")
    today = page.locator("main")  # today or upcoming, whatever the hour
    await expect(today).to_contain_text(w["missed"].format(who=client.name))
    await expect(today).to_contain_text(w["stale"])
    await shoot_widths(page, f"tasks-system-{lang}")
    await page.goto(f"/clients/{client.id}")
    tasks = page.get_by_test_id("card-tasks")
    await expect(tasks).to_contain_text(w["missed"].format(who=client.name))
    await expect(tasks).to_contain_text(w["stale"])
    await context.close()
