"""Shifts are for everyone who takes calls: the operator is offered beside the managers."""

from __future__ import annotations

import pytest
from e2e.helpers import choose, login, new_context
from playwright.async_api import Browser, expect
from support.server import RunningApi

WORDS = {"ru": "Сотрудник", "en": "Employee"}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_the_operator_can_be_given_a_shift(
    app: RunningApi, browser: Browser, lang: str
) -> None:
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "supervisor", "supervisor-demo-1", lang)
    await page.goto("/schedules")
    calendar = page.get_by_test_id("calendar")
    await expect(calendar.locator("thead th").first).to_have_text(WORDS[lang])
    await expect(calendar).to_contain_text("Мария Соколова")  # the operator's own row
    await choose(page, WORDS[lang], "Мария Соколова")
    select = page.get_by_label(WORDS[lang], exact=True).first
    await expect(select).to_contain_text("Мария Соколова")
    await context.close()
