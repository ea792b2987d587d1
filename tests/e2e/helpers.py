"""What the e2e tests do in a page: contexts in a language, login, screenshots."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, Page, expect
from support.call_events import call_sink
from support.server import RunningApi

from telephony.events import CallEvent

SHOTS = Path(__file__).resolve().parents[2] / "var" / "e2e-screenshots"


async def new_context(browser: Browser, app: RunningApi, lang: str = "ru") -> BrowserContext:
    return await browser.new_context(
        base_url=app.base_url,
        locale="ru-RU" if lang == "ru" else "en-US",
        viewport={"width": 1366, "height": 900},
        timezone_id="Europe/Moscow",
    )


async def login(page: Page, username: str, password: str, lang: str | None = None) -> None:
    """Signs in through the form. `lang` first saves that language on the user's profile
    (through the API): the profile's language wins over the browser's once signed in."""
    await page.goto("/login")
    if lang is not None:
        await set_language(page, username, password, lang)
    await sign_in(page, username, password)


async def sign_in(page: Page, username: str, password: str) -> None:
    """Fills the sign-in page the browser is on and waits to be taken past it."""
    await page.locator("#username").fill(username)
    await page.locator("#password").fill(password)
    await page.locator("#password").press("Enter")
    await page.wait_for_url(lambda url: "/login" not in url)


async def logout(page: Page, lang: str) -> None:
    """Logs out from the header and waits for the sign-in page, as a user would: leaving
    sooner cuts the log-out request off, and the next page finds the user still signed in."""
    await page.get_by_role("button", name="Выйти" if lang == "ru" else "Log out").click()
    await page.wait_for_url("**/login")


async def set_language(page: Page, username: str, password: str, lang: str) -> None:
    """The user's profile language, set as the user through the API (then signed out)."""
    headers = same_site(page)
    creds = {"username": username, "password": password}
    assert (await page.request.post("/api/v1/auth/login", data=creds, headers=headers)).ok
    me = await page.request.patch("/api/v1/auth/me", data={"language": lang}, headers=headers)
    assert me.ok, await me.text()
    await page.context.clear_cookies()


def same_site(page: Page) -> dict[str, str]:
    """The Origin a browser sends: API calls a test makes beside the UI pass the CSRF check."""
    url = urlsplit(page.url)
    return {"Origin": f"{url.scheme}://{url.netloc}"}


async def shoot(page: Page, name: str) -> None:
    """Screenshots of every page, in both languages, for a human to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.wait_for_timeout(150)  # let transitions settle
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


WIDTHS = (1440, 1024, 390)


async def shoot_widths(page: Page, name: str, *, fits: bool = False) -> None:
    """The page at a desktop, a 1024 laptop and a 390 phone width: `{name}-{width}.png`.
    `fits`: at each, the page is no wider than the window (what is wide scrolls inside) and
    reads whole (see `reads_whole`)."""
    size = page.viewport_size or {"width": 1366, "height": 900}
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900 if width > 400 else 844})
        await shoot(page, f"{name}-{width}")
        if fits:
            wide = await page.evaluate("document.documentElement.scrollWidth")
            assert wide <= width, f"{name} is {wide} px wide at {width} px"
            unread = await reads_whole(page)  # helpers are not assert-rewritten: say what
            assert unread == [], f"{name} at {width} px: {unread}"
    await page.set_viewport_size(size)


# Placeholders shown in full, and grey text (empty states, notes, placeholders) at WCAG AA
# contrast with what is behind it: the first ancestor with a background of its own.
_READS_WHOLE = r"""() => {
    const shown = (el) => el.offsetParent !== null && el.textContent.trim() !== ''
    const out = []
    const placeholders = '.n-input__placeholder, .n-base-selection-placeholder__inner'
    for (const el of document.querySelectorAll(placeholders)) {
        if (shown(el) && el.scrollWidth > el.clientWidth + 1) out.push(`cut: ${el.textContent}`)
    }
    const rgb = (c) => c.match(/[\d.]+/g).map(Number)
    const lum = (c) => {
        const [r, g, b] = c.map((v) => {
            v /= 255
            return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4
        })
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    }
    const behind = (el) => {
        for (let e = el; e; e = e.parentElement) {
            const bg = getComputedStyle(e).backgroundColor
            if (rgb(bg)[3] !== 0) return bg
        }
        return 'rgb(255, 255, 255)'
    }
    for (const el of document.querySelectorAll(`.n-empty__description, .muted, ${placeholders}`)) {
        if (!shown(el)) continue
        // A translucent colour (naive-ui's greys often are) is seen mixed with what is behind.
        const [fg, bg] = [rgb(getComputedStyle(el).color), rgb(behind(el))]
        const alpha = fg[3] ?? 1
        const seen = fg.slice(0, 3).map((v, i) => v * alpha + bg[i] * (1 - alpha))
        const [a, b] = [lum(seen), lum(bg.slice(0, 3))].sort((x, y) => y - x)
        const ratio = (a + 0.05) / (b + 0.05)
        if (ratio < 4.5) out.push(`contrast ${ratio.toFixed(2)}: ${el.textContent.trim()}`)
    }
    return out
}"""


async def reads_whole(page: Page) -> list[str]:
    """What a reader cannot read: placeholders cut short, grey text (placeholders too) below
    4.5:1."""
    return list(await page.evaluate(_READS_WHOLE))


async def pbx(app: RunningApi, *events: CallEvent) -> None:
    """Feeds call events through the real pipeline, as a PBX adapter would."""
    sink = call_sink(app.app.state.services)
    for event in events:
        await sink(event)


async def choose(page: Page, label: str, option: str) -> None:
    """Picks an option of a naive-ui select (its options are not ARIA options)."""
    # A select opened before keeps its menu in the page, hidden once it has faded out: until
    # then it may lie over this one's, or be the first to offer the same option.
    menus = page.locator(".n-base-select-menu:visible")
    await expect(menus).to_have_count(0)
    await page.get_by_label(label, exact=True).first.click()
    await menus.locator(".n-base-select-option", has_text=option).first.click()
