"""A phone and a 1024 laptop: the floating call panel stays on screen, numbers stay on one
line (and whole on a phone), what is wider than a phone says so, and headings break between
words only."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from e2e.helpers import login, logout, new_context, pbx, shoot_widths
from playwright.async_api import Browser, FloatRect, Locator, Page, expect
from support.server import RunningApi

from telephony import events as ev

_ids = itertools.count(1)


async def one_line(el: Locator) -> bool:
    """The element's text sits on a single line box."""
    return bool(
        await el.evaluate(
            """el => {
                const range = document.createRange()
                range.selectNodeContents(el)
                const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)))
                return tops.size <= 1  // an empty cell has none
            }"""
        )
    )


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_floating_call_panel_fits_a_phone_and_numbers_do_not_wrap(
    app: RunningApi, browser: Browser, lang: str
) -> None:
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "operator", "operator-demo-1", lang)
    await page.goto("/clients")
    table = page.get_by_test_id("clients-table")
    await expect(table.locator("tbody tr").first).to_be_visible()

    # 1024: every number in the list on one line.
    await page.set_viewport_size({"width": 1024, "height": 800})
    cells = table.locator("td.nowrap")
    assert await cells.count() > 10
    for i in range(await cells.count()):
        assert await one_line(cells.nth(i)), await cells.nth(i).text_content()

    # 390: a call pops while the operator is on another page, as a floating panel.
    await page.set_viewport_size({"width": 390, "height": 844})
    call_id = f"layout-{lang}-{next(_ids)}"
    now = datetime.now(UTC)
    await pbx(
        app,
        ev.CallStarted(
            call_id=call_id,
            at=now,
            direction=ev.Direction.INBOUND,
            caller="+79991234567",
            callee="4950000000",
        ),
        ev.CallRinging(call_id=call_id, at=now, agent="104"),
    )
    panel = page.get_by_test_id("call-panel")
    await expect(panel).to_be_visible()
    box = await panel.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert box["y"] >= 0 and box["y"] + min(box["height"], 844) <= 844, box
    assert await one_line(panel.get_by_test_id("call-number"))
    await shoot_widths(page, f"pop-floating-{lang}")
    await context.close()


# Per `.dots` list: items starting a line whose "·" still shows (none may), items that
# wrapped to a new line, and dots showing between two items on a line. A dot shows where
# a click on it lands on its item (the clipped ones are cut away from hits too).
_DOTS = """() => {
    const seen = { leading: [], wrapped: 0, between: 0 }
    for (const list of document.querySelectorAll('.dots')) {
        const items = [...list.children].filter((el) => el.getClientRects().length)
        if (!items.length) continue
        const start = Math.min(...items.map((el) => el.getBoundingClientRect().left))
        items.forEach((el, i) => {
            el.scrollIntoView({ block: 'center' })
            const box = el.getBoundingClientRect()
            const dot = parseFloat(getComputedStyle(el, '::before').width)
            const hit = document.elementFromPoint(box.left + dot / 2, box.top + box.height / 2)
            const shows = hit !== null && el.contains(hit)
            if (box.left <= start + 1) {
                if (shows) seen.leading.push(el.textContent.trim())
                if (i > 0) seen.wrapped += 1
            } else if (shows) seen.between += 1
        })
    }
    return seen
}"""


@contextlib.asynccontextmanager
async def supervisor_on_a_phone(
    app: RunningApi, browser: Browser, lang: str
) -> AsyncIterator[Page]:
    """The supervisor signed in, on a 390 px wide phone."""
    context = await new_context(browser, app, lang)
    page = await context.new_page()
    await login(page, "supervisor", "supervisor-demo-1", lang)
    await page.set_viewport_size({"width": 390, "height": 844})
    try:
        yield page
    finally:
        await context.close()


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_a_dot_separator_never_leads_a_wrapped_line(
    app: RunningApi, browser: Browser, lang: str
) -> None:
    async with supervisor_on_a_phone(app, browser, lang) as page:
        await page.goto("/clients/1")  # a note and a call with their authors in the timeline
        await expect(page.get_by_test_id("timeline-item")).to_have_count(2)
        seen = await page.evaluate(_DOTS)
        assert seen["leading"] == [], seen
        assert seen["wrapped"] > 0 and seen["between"] > 0, seen  # the phone width did wrap one


def within_phone(box: FloatRect | None) -> bool:
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390


async def text_shows_whole(el: Locator) -> bool:
    """The element's text lies inside both the element and the window (a cell too narrow
    lets a line that may not wrap run out of it, to be clipped by the table)."""
    return bool(
        await el.evaluate(
            """el => {
                const range = document.createRange()
                range.selectNodeContents(el)
                const text = range.getBoundingClientRect()
                const box = el.getBoundingClientRect()
                return text.left >= Math.max(0, box.left)
                    && text.right <= Math.min(window.innerWidth, box.right)
            }"""
        )
    )


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_a_phone_reads_every_number_and_is_shown_what_scrolls(
    app: RunningApi, browser: Browser, lang: str
) -> None:
    async with supervisor_on_a_phone(app, browser, lang) as page:
        # The clients list fits the window (nothing sideways to scroll to), each number whole and
        # on one line.
        await page.goto("/clients")
        table = page.get_by_test_id("clients-table")
        cells = table.locator("td[data-col-key='primary_phone']")
        await expect(cells.first).to_be_visible()
        for part in await table.locator("table").all():  # naive-ui: a head and a body table
            assert within_phone(await part.bounding_box())
        assert await cells.count() >= 10
        for cell in await cells.all():
            assert await text_shows_whole(cell), await cell.text_content()
            assert await one_line(cell), await cell.text_content()
        # The deals board is wider than the phone: it says that it scrolls sideways.
        await page.goto("/deals")
        first_deal = page.get_by_test_id("deals-board").locator("[data-deal]").first
        await expect(first_deal).to_be_visible()
        await expect(page.get_by_test_id("scroll-hint")).to_be_visible()

        # The admin's tabs in Russian run past the edge: an arrow says so and brings the last one
        # in view. The English ones fit.
        await logout(page, lang)
        await login(page, "admin", "admin-demo-1", lang)
        await page.goto("/admin")
        last = page.locator(".n-tabs-tab[data-name='status']")  # naive-ui's tabs have no role
        await expect(last).to_be_visible()
        if lang == "ru":
            assert not within_phone(await last.bounding_box())
            await page.locator(".n-tabs-scroll-button--end").click()
        await page.wait_for_function(  # it scrolls smoothly: until the tab is whole in the window
            "el => { const r = el.getBoundingClientRect(); return r.left >= 0 && r.right <= 390 }",
            arg=await last.element_handle(),
        )


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_a_phone_shows_the_newest_message_only(
    app: RunningApi, browser: Browser, lang: str
) -> None:
    """Messages stack at the top of the window: on a phone two of them already cover the
    header and the page's title, so each new one replaces the one before. (The page's clock
    stands still: no message goes away on its own while the test works.)"""
    edit, save = ("Изменить", "Сохранить") if lang == "ru" else ("Edit", "Save")

    async def save_twice(page: Page) -> None:
        for _ in range(2):
            await page.get_by_role("button", name=edit, exact=True).click()
            await page.get_by_test_id("client-edit").get_by_role("button", name=save).click()
            await expect(page.get_by_role("button", name=edit, exact=True)).to_be_visible()

    async with supervisor_on_a_phone(app, browser, lang) as page:
        await page.clock.install()
        await page.goto("/clients/1")
        await page.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))
        await save_twice(page)
        await expect(page.locator(".n-message")).to_have_count(1)
        await page.set_viewport_size({"width": 1440, "height": 900})
        await save_twice(page)
        await expect(page.locator(".n-message")).to_have_count(3)  # the phone's and two more
