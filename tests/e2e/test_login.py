"""Login in both languages; navigation by role; the language switch."""

from __future__ import annotations

import pytest
from e2e.helpers import login, logout, new_context, set_language, shoot
from playwright.async_api import Browser, expect
from support.server import RunningApi


@pytest.mark.parametrize(
    ("lang", "title", "submit", "console", "failed"),
    [
        ("ru", "Вход в Callcard", "Войти", "Пульт", "Неверный логин или пароль"),
        ("en", "Sign in to Callcard", "Sign in", "Console", "Wrong username or password"),
    ],
)
async def test_login_in_the_browser_language(
    app: RunningApi, browser: Browser, lang: str, title: str, submit: str, console: str, failed: str
) -> None:
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await page.goto("/")
    await expect(page).to_have_url(f"{app.base_url}/login")
    await expect(page.get_by_text(title)).to_be_visible()
    await shoot(page, f"login-{lang}")

    # A wrong password: a clear message, still on the login page.
    await page.locator("#username").fill("operator")
    await page.locator("#password").fill("wrong-password")
    await page.get_by_role("button", name=submit).click()
    await expect(page.get_by_role("alert")).to_have_text(failed)
    await expect(page).to_have_url(f"{app.base_url}/login")

    await login(page, "operator", "operator-demo-1", lang)
    await expect(page).to_have_url(f"{app.base_url}/console")
    nav = page.get_by_role("navigation")
    await expect(nav.get_by_role("link", name=console)).to_be_visible()
    # An operator has no supervisor desk or administration.
    await expect(nav.locator("[data-section=supervisor]")).to_have_count(0)
    await expect(nav.locator("[data-section=admin]")).to_have_count(0)
    await expect(page.get_by_text("Мария Соколова")).to_be_visible()
    await shoot(page, f"console-empty-{lang}")
    await context.close()


async def test_navigation_by_role_and_language_switch(app: RunningApi, browser: Browser) -> None:
    context = await new_context(browser, app, "ru")
    page = await context.new_page()
    await login(page, "supervisor", "supervisor-demo-1")
    nav = page.get_by_role("navigation")
    await expect(nav.locator("[data-section=supervisor]")).to_have_text("Контроль")
    await expect(nav.locator("[data-section=admin]")).to_have_count(0)
    # The admin-only page is not reachable by typing its address either.
    await page.goto("/admin")
    await expect(page).to_have_url(f"{app.base_url}/console")

    await page.get_by_label("Язык").first.click()
    await page.get_by_text("English", exact=True).click()
    await expect(nav.locator("[data-section=supervisor]")).to_have_text("Supervisor desk")
    # The choice survives a reload and is saved on the profile.
    await page.reload()
    await expect(nav.locator("[data-section=clients]")).to_have_text("Clients")
    me = await (await page.request.get("/api/v1/auth/me")).json()
    assert me["language"] == "en"

    await logout(page, "en")
    await expect(page).to_have_url(f"{app.base_url}/login")
    await page.goto("/clients")
    await expect(page).to_have_url(f"{app.base_url}/login?next=/clients")
    await context.close()


async def test_the_profile_language_wins_over_the_browser(
    app: RunningApi, browser: Browser
) -> None:
    context = await new_context(browser, app, "en")  # the browser prefers English
    page = await context.new_page()
    await page.goto("/login")
    await expect(page.get_by_text("Sign in to Callcard")).to_be_visible()
    await set_language(page, "manager", "manager-demo-1", "ru")
    await login(page, "manager", "manager-demo-1")
    nav = page.get_by_role("navigation")
    await expect(nav.locator("[data-section=clients]")).to_have_text("Клиенты")
    await expect(page.locator("html")).to_have_attribute("lang", "ru")
    # Saved on the profile elsewhere (another device): the next visit follows it.
    await set_language(page, "manager", "manager-demo-1", "en")
    await login(page, "manager", "manager-demo-1")
    await expect(nav.locator("[data-section=clients]")).to_have_text("Clients")
    await context.close()
