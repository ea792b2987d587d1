"""Dates, decimals and words in the interface language: a card's birthday and its audit
tab, the clients' sort options and the tasks' snooze menu."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from e2e.helpers import login, new_context, same_site, shoot_widths
from playwright.async_api import Browser, expect
from support.server import RunningApi

WORDS = {
    "ru": {
        "birthday": "05.03.1990",
        "audit": "Журнал",
        "changed": "Карточка изменена",
        "field": "день рождения",
        "sort": "Сортировка",
        "sorts": ["Сначала новые", "Сначала старые", "Имя А–Я", "Имя Я–А"],
        "later": "Позже",
        "snooze": ["На 10 минут", "На час", "Завтра"],
    },
    "en": {
        "birthday": "05/03/1990",
        "audit": "Audit",
        "changed": "Card changed",
        "field": "birthday",
        "sort": "Sort",
        "sorts": ["Newest first", "Oldest first", "Name A–Z", "Name Z–A"],
        "later": "Later",
        "snooze": ["In 10 minutes", "In an hour", "Tomorrow"],
    },
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_dates_decimals_and_menus_in_the_users_language(
    app: RunningApi, browser: Browser, lang: str
) -> None:
    w = WORDS[lang]
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "supervisor", "supervisor-demo-1", lang)
    api = page.request
    client = (await (await api.get("/api/v1/clients?page_size=1")).json())["items"][0]
    r = await api.patch(
        f"/api/v1/clients/{client['id']}", data={"birthday": "1990-03-05"}, headers=same_site(page)
    )
    assert r.ok, await r.text()
    due = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    r = await api.post(
        "/api/v1/tasks", data={"title": f"Позвонить {lang}", "due_at": due}, headers=same_site(page)
    )
    assert r.ok, await r.text()

    await page.goto(f"/clients/{client['id']}")
    await expect(page.locator("dd", has_text=w["birthday"])).to_be_visible()
    await page.get_by_text(w["audit"], exact=True).click()
    row = page.get_by_test_id("audit").locator("tr", has_text=w["changed"]).first
    await expect(row).to_contain_text(w["field"])
    await shoot_widths(page, f"card-audit-{lang}")

    await page.goto("/clients")
    await page.get_by_label(w["sort"], exact=True).first.click()
    options = page.locator(".n-base-select-option")
    await expect(options).to_have_text(w["sorts"])
    await page.keyboard.press("Escape")

    await page.goto("/tasks")
    await page.get_by_role("button", name=f"{w['later']}: Позвонить {lang}").click()
    await expect(page.locator(".n-dropdown-option")).to_have_text(w["snooze"])
    await shoot_widths(page, f"tasks-snooze-{lang}")
    await context.close()
