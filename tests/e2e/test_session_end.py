"""A session ended elsewhere (logged out in another tab, revoked by an admin) takes an open
tab to the sign-in page, whether its live socket was up when it ended or away (a network
blip) and refused on its way back; after signing in again the tab is back where it was."""

from __future__ import annotations

import asyncio

import pytest
from e2e.helpers import login, new_context, same_site, shoot, sign_in
from playwright.async_api import Browser, Page, WebSocketRoute, expect
from support.server import RunningApi

STATUS_ONLINE = "В сети"
SESSION_ENDED = "Сеанс завершён. Войдите снова."


async def _end_session(page: Page) -> None:
    """The session's log-out, as another tab of the same browser would send it."""
    response = await page.request.post("/api/v1/auth/logout", headers=same_site(page))
    assert response.ok, await response.text()


async def _signs_in_again(page: Page, app: RunningApi, shot: str) -> None:
    await expect(page).to_have_url(f"{app.base_url}/login?next=/clients")
    await expect(page.locator("#username")).to_be_visible()
    await expect(page.get_by_test_id("session-ended")).to_have_text(SESSION_ENDED)
    await shoot(page, shot)
    # The page's own requests refused on the way out are not toasted on top of that (the
    # shot's settling time is long enough for such a toast to show).
    assert await page.locator(".n-message").count() == 0
    await sign_in(page, "manager", "manager-demo-1")
    await expect(page).to_have_url(f"{app.base_url}/clients")
    await expect(page.get_by_test_id("my-status")).to_have_text(STATUS_ONLINE)


@pytest.mark.parametrize("socket", ["up", "away"])
async def test_a_session_ended_elsewhere_takes_the_tab_to_the_sign_in_page(
    app: RunningApi, browser: Browser, socket: str
) -> None:
    context = await new_context(browser, app, "ru")
    page = await context.new_page()
    sockets: list[WebSocketRoute] = []
    dropped, ended = asyncio.Event(), asyncio.Event()

    async def through(ws: WebSocketRoute) -> None:
        # Every socket of the tab goes to the server; once one is dropped, the tab's way
        # back waits until the session has ended.
        sockets.append(ws)
        if dropped.is_set():
            await ended.wait()
        ws.connect_to_server()

    await page.route_web_socket("**/ws", through)
    await login(page, "manager", "manager-demo-1")
    await page.goto("/clients")
    await expect(page.get_by_test_id("my-status")).to_have_text(STATUS_ONLINE)
    if socket == "away":
        dropped.set()
        await sockets[-1].close(code=4000, reason="network blip")
        await expect(page.get_by_test_id("my-status")).not_to_have_text(STATUS_ONLINE)
    await _end_session(page)
    ended.set()
    await _signs_in_again(page, app, f"session-ended-socket-{socket}")
    await context.close()


async def test_the_sign_in_page_says_a_session_ended_only_when_one_did(
    app: RunningApi, browser: Browser
) -> None:
    context = await new_context(browser, app, "ru")
    page = await context.new_page()
    await page.goto("/login?next=/clients")
    await expect(page.locator("#username")).to_be_visible()
    await expect(page.get_by_test_id("session-ended")).to_have_count(0)
    await login(page, "manager", "manager-demo-1")
    await page.goto("/clients")
    await expect(page.get_by_test_id("my-status")).to_have_text(STATUS_ONLINE)
    await _end_session(page)
    await expect(page.get_by_test_id("session-ended")).to_have_text(SESSION_ENDED)
    # A failed sign-in says why it failed instead; a reload of the page claims nothing.
    await page.locator("#username").fill("manager")
    await page.locator("#password").fill("wrong-password")
    await page.locator("#password").press("Enter")
    await expect(page.get_by_role("alert")).to_have_text("Неверный логин или пароль")
    await expect(page.get_by_test_id("session-ended")).to_have_count(0)
    await page.reload()
    await expect(page.locator("#username")).to_be_visible()
    await expect(page.get_by_test_id("session-ended")).to_have_count(0)
    await context.close()
