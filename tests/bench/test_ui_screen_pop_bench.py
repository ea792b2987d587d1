"""Screen-pop in the browser: a `call.ringing` through the embedded pipeline → the card
painted on the operator's console in Debian's Chromium.

Prints two figures over BENCH_UI_CALLS calls (default 100), one after another:
- in-page: frame arrived → card painted (the app's own `screen-pop:<id>` measure);
- end to end: the PBX event handed to the call-event sink → the card painted (the page's
  paint mark against the event's hand-off, both on this machine's clock)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from bench.measure import report
from e2e.fixtures import app, backend, browser, chromium, demo, ui_dist
from e2e.helpers import login, new_context, pbx
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from support.server import RunningApi

from crm_api.clients.models import Client
from telephony import events as ev

__all__ = ["app", "backend", "browser", "chromium", "demo", "ui_dist"]
CALLS = int(os.environ.get("BENCH_UI_CALLS", "100"))


async def test_screen_pop_paint(
    app: RunningApi, browser: Browser, db: async_sessionmaker[AsyncSession]
) -> None:
    async with db() as session:
        clients = (await session.scalars(select(Client).options(selectinload(Client.phones)))).all()
    numbers = [c.phones[0].e164 for c in clients if c.phones]
    context = await new_context(browser, app, "ru")
    page = await context.new_page()
    await login(page, "operator", "operator-demo-1")
    await expect(page.get_by_test_id("no-call")).to_be_visible()
    # Wall clock of the page at its time origin, to put its marks on this process's clock.
    origin_ms = await page.evaluate("() => performance.timeOrigin")

    in_page: list[float] = []
    end_to_end: list[float] = []
    for n in range(CALLS):
        call_id = f"bench-{n}"
        now = datetime.now(UTC)
        await pbx(
            app,
            ev.CallStarted(
                call_id=call_id,
                at=now,
                direction=ev.Direction.INBOUND,
                caller=numbers[n % len(numbers)],
                callee="4950",
            ),
        )
        handed = time.time()
        await pbx(app, ev.CallRinging(call_id=call_id, at=now, agent="104"))
        panel = page.locator(f"[data-testid=call-panel][data-call-id='{call_id}']")
        await expect(panel.get_by_test_id("call-client-name")).to_be_visible()
        marks = await page.wait_for_function(
            """id => {
                const m = performance.getEntriesByName('screen-pop:' + id)[0]
                const p = performance.getEntriesByName('card.painted:' + id)[0]
                return m && p ? [m.duration, p.startTime] : null
            }""",
            arg=call_id,
        )
        duration_ms, painted_at = await marks.json_value()
        in_page.append(duration_ms / 1000)
        end_to_end.append((origin_ms + painted_at) / 1000 - handed)
        await pbx(
            app,
            ev.CallAnswered(call_id=call_id, at=datetime.now(UTC), agent="104"),
            ev.CallEnded(
                call_id=call_id,
                at=datetime.now(UTC),
                direction=ev.Direction.INBOUND,
                disposition=ev.Disposition.ANSWERED,
                cause=16,
                talk_s=1.0,
                agents=("104",),
                answered_by="104",
            ),
        )
        await panel.get_by_role("button", name="Скрыть").click()
        await expect(panel).to_have_count(0)
    report("ui: frame → card painted", in_page, target_ms=50)
    report("ui: PBX event → card painted", end_to_end, target_ms=100)
    await context.close()
