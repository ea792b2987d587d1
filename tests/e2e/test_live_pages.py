"""The card and the deals board stay live while open: what another tab or colleague does
(a note, a deal, a move) shows without a reload, through the stores' socket frames."""

from __future__ import annotations

import pytest
from e2e.helpers import login, new_context, same_site, shoot_widths
from e2e.test_call_progress_and_system_tasks import _managers_client
from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.server import RunningApi


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_card_and_board_follow_changes_made_elsewhere(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession], lang: str
) -> None:
    _, client = await _managers_client(db)
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    other = await context.new_page()  # another tab of the same manager
    await login(page, "manager", "manager-demo-1", lang)
    await page.goto(f"/clients/{client.id}")
    await expect(page.get_by_test_id("client-name")).to_have_text(client.name)

    headers = same_site(page)
    note = f"Заметка из другой вкладки {lang}"
    r = await other.request.post(
        f"/api/v1/clients/{client.id}/notes", data={"body": note}, headers=headers
    )
    assert r.ok, await r.text()
    await expect(page.get_by_test_id("timeline")).to_contain_text(note)
    title = f"Живая сделка {lang}"
    r = await other.request.post(
        "/api/v1/deals",
        data={"client_id": client.id, "title": title, "amount": 5000},
        headers=headers,
    )
    assert r.ok, await r.text()
    deal = await r.json()
    await expect(page.get_by_test_id("card-deals")).to_contain_text(title)

    # The board: the deal moves to another stage while the page is open.
    await page.goto("/deals")
    board = page.get_by_test_id("deals-board")
    card = board.locator(f"[data-deal='{deal['id']}']")
    await expect(card).to_be_visible()
    stages = (await (await other.request.get("/api/v1/deal-stages")).json())["items"]
    target = next(s for s in stages if s["kind"] == "open" and s["id"] != deal["stage_id"])
    column = board.locator(f"section[data-stage='{target['code'] or target['id']}']")
    await expect(column.locator(f"[data-deal='{deal['id']}']")).to_have_count(0)
    r = await other.request.post(
        f"/api/v1/deals/{deal['id']}/move", data={"stage_id": target["id"]}, headers=headers
    )
    assert r.ok, await r.text()
    await expect(column.locator(f"[data-deal='{deal['id']}']")).to_be_visible()
    await expect(card).to_have_count(1)  # moved, not copied
    await shoot_widths(page, f"deals-live-{lang}")

    # Away and back: the card is hydrated afresh, with what changed meanwhile.
    await page.goto(f"/clients/{client.id}")
    await expect(page.get_by_test_id("card-deals")).to_contain_text(title)
    await context.close()
