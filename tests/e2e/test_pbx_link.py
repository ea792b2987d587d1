"""A dead PBX link is visible: the header's light, a banner on the console and a disabled
"Call" with the reason, for as long as the link is down; all of it goes when it is back."""

from __future__ import annotations

import pytest
from e2e.helpers import login, new_context, shoot_widths
from playwright.async_api import Browser, expect
from support.server import RunningApi

from telephony.ami.simulator import AmiSimulator

WORDS = {
    "ru": {"down": "Нет связи с АТС", "call": "Позвонить", "online": "В сети"},
    "en": {"down": "No link to the PBX", "call": "Call", "online": "Online"},
}


@pytest.mark.parametrize("lang", ["ru", "en"])
async def test_pbx_link_down_shows_a_banner_until_it_is_back(
    pbx_app: RunningApi, pbx: AmiSimulator, browser: Browser, lang: str
) -> None:
    w = WORDS[lang]
    context = await new_context(browser, pbx_app, lang)
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1", lang)
    await page.goto("/console")
    light = page.get_by_test_id("link-pbx")
    await expect(light).to_have_attribute("data-state", "up")
    await expect(page.get_by_test_id("pbx-banner")).to_have_count(0)
    await expect(page.get_by_test_id("my-status")).to_have_text(w["online"])

    await pbx.stop()  # Asterisk goes away
    banner = page.get_by_test_id("pbx-banner")
    await expect(banner).to_contain_text(w["down"], timeout=15_000)
    await expect(light).to_have_attribute("data-state", "down")
    await expect(page.get_by_test_id("my-status")).to_have_text(w["down"])
    await shoot_widths(page, f"console-pbx-down-{lang}")

    # Calling from a card is off, and the card says why.
    await page.get_by_role("navigation").get_by_role("link").nth(1).click()
    await page.get_by_test_id("clients-table").get_by_role("link").first.click()
    call = page.get_by_test_id("phones").get_by_role("button", name=w["call"]).first
    await expect(call).to_be_disabled()
    await expect(page.get_by_test_id("channel-off").filter(has_text=w["down"])).to_be_visible()

    await pbx.start()  # back on the same port: the adapter reconnects by itself
    await expect(call).to_be_enabled(timeout=40_000)
    await page.go_back()
    await page.goto("/console")
    await expect(light).to_have_attribute("data-state", "up")
    await expect(page.get_by_test_id("pbx-banner")).to_have_count(0)
    await context.close()
