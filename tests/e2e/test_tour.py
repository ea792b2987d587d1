"""Every page, in both languages and as each role that uses it: it renders its heading with
its data, the browser logs no errors, and screenshots at 1440, 1024 and 390 px are kept for
a human to look at (var/e2e-screenshots)."""

from __future__ import annotations

import pytest
from e2e.helpers import choose, login, logout, new_context, shoot_widths
from playwright.async_api import Browser, ConsoleMessage, expect
from support.server import RunningApi

PAGES = {
    "ru": {
        "console": "Пульт",
        "clients": "Клиенты",
        "deals": "Сделки",
        "tasks": "Задачи",
        "supervisor": "Контроль",
        "reports": "Отчёты",
        "schedules": "Графики",
    },
    "en": {
        "console": "Console",
        "clients": "Clients",
        "deals": "Deals",
        "tasks": "Tasks",
        "supervisor": "Supervisor desk",
        "reports": "Reports",
        "schedules": "Schedules",
    },
}
ADMIN = {"ru": "Администрирование", "en": "Administration"}
EMPLOYEE = {"ru": "Сотрудник", "en": "Employee"}


# Every page at three widths: on 2 shared cores this outlasts the suite's default limit.
@pytest.mark.timeout(360)
@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_every_page_renders(app: RunningApi, browser: Browser, lang: str) -> None:
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        # The login page asks /auth/me first; its 401 is how it learns nobody is logged in.
        if msg.type == "error" and "401" not in msg.text:
            errors.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await login(page, "supervisor", "supervisor-demo-1", lang)
    for path, heading in PAGES[lang].items():
        await page.get_by_role("navigation").get_by_role("link", name=heading).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        await expect(page.get_by_test_id("not-available")).to_have_count(0)
        await expect(page.locator(".n-spin")).to_have_count(0)
        await shoot_widths(page, f"page-{path}-{lang}", fits=True)
    # Shifts are for everyone who takes calls: the operator is offered beside the managers.
    await page.goto("/schedules")
    calendar = page.get_by_test_id("calendar")
    await expect(calendar.locator("thead th").first).to_have_text(EMPLOYEE[lang])
    await expect(calendar).to_contain_text("Мария Соколова")  # the operator's own row
    await choose(page, EMPLOYEE[lang], "Мария Соколова")
    await expect(page.get_by_label(EMPLOYEE[lang], exact=True).first).to_contain_text(
        "Мария Соколова"
    )
    # The card of a client with history.
    await page.goto("/clients/1")  # the demo's first clients have notes and calls
    await expect(page.get_by_test_id("timeline-item").first).to_be_visible()
    await shoot_widths(page, f"page-client-card-{lang}", fits=True)
    await page.get_by_text("Журнал" if lang == "ru" else "Audit", exact=True).click()
    await expect(page.get_by_test_id("audit").locator("tbody tr").first).to_be_visible()

    await logout(page, lang)
    await login(page, "admin", "admin-demo-1", lang)
    await page.goto("/admin")
    await expect(page.get_by_role("heading", level=1)).to_have_text(ADMIN[lang])
    await expect(page.get_by_test_id("users-table").locator("tbody tr")).to_have_count(6)
    await shoot_widths(page, f"page-admin-{lang}", fits=True)
    await page.get_by_text("Справочники" if lang == "ru" else "Directories", exact=True).click()
    await expect(page.get_by_test_id("dir-groups").locator("li")).to_have_count(3)
    await shoot_widths(page, f"page-admin-directories-{lang}", fits=True)
    assert errors == []
    await context.close()


# The sections the operator and the manager work in, as they see them (their own tasks,
# deals and shifts), and the sign-in page before them.
ROLE_PAGES = {
    "operator": ("console", "clients", "tasks"),
    "manager": ("console", "clients", "deals", "tasks", "schedules"),
}


@pytest.mark.timeout(360)
@pytest.mark.parametrize("role", ["operator", "manager"])
@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_each_role_sees_its_pages(
    app: RunningApi, browser: Browser, lang: str, role: str
) -> None:
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if role == "operator":
        await page.goto("/login")
        await expect(page.locator("#username")).to_be_visible()
        await shoot_widths(page, f"page-login-{lang}", fits=True)
    await login(page, role, f"{role}-demo-1", lang)
    for path in ROLE_PAGES[role]:
        heading = PAGES[lang][path]
        await page.get_by_role("navigation").get_by_role("link", name=heading).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        await expect(page.locator(".n-spin")).to_have_count(0)
        await shoot_widths(page, f"page-{role}-{path}-{lang}", fits=True)
    assert errors == []
    await context.close()
