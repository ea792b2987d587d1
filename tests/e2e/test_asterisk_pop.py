"""The whole way from the PBX wire to the browser: the AMI simulator replays the real
Asterisk capture of an answered incoming call over TCP, Callcard's AMI adapter turns it
into call events, and the manager on extension 101 sees the card pop, the call answered
and ended, then the recording on the card."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from e2e.helpers import login, new_context, same_site, shoot
from playwright.async_api import Browser, expect
from support.server import RunningApi

from telephony.ami.simulator import CAPTURES, AmiSimulator, prepare

CAPTURE_WAV = CAPTURES / "incoming-answered.wav"


@pytest.fixture
def capture_wav() -> Path:
    return CAPTURE_WAV


async def test_captured_call_pops_and_lands_on_the_card(
    pbx_app: RunningApi, pbx: AmiSimulator, browser: Browser, capture_wav: Path
) -> None:
    context = await new_context(browser, pbx_app, "ru")
    page = await context.new_page()
    await login(page, "manager", "manager-demo-1")  # extension 101, the capture's phone
    # The capture's caller as a client of this manager.
    made = await page.request.post(
        "/api/v1/clients",
        data={"name": "Сидоров Алексей", "phones": [{"number": "89161234567"}]},
        headers=same_site(page),
    )
    assert made.ok, await made.text()
    client_id = (await made.json())["id"]
    await page.goto("/console")
    await expect(page.get_by_test_id("no-call")).to_be_visible()

    events = prepare("incoming-answered")
    recording = next(
        Path(dict(p)["Value"]).name
        for p in events
        if dict(p).get("Variable") == "MIXMONITOR_FILENAME"
    )
    shutil.copy(capture_wav, pbx_app.settings.recordings_dir / recording)
    await pbx.emit(events, pace=0.03)  # about the capture's own pace, so each state shows
    panel = page.get_by_test_id("call-panel")
    await expect(panel.get_by_test_id("call-client-name")).to_have_text("Сидоров Алексей")
    await expect(panel).to_have_attribute("data-state", "ended", timeout=15_000)
    await shoot(page, "console-asterisk-ru")

    await panel.get_by_role("link", name="Сидоров Алексей").click()
    call = page.get_by_test_id("timeline").locator("[data-kind=call]")
    await expect(call).to_contain_text("отвечен")
    player = call.get_by_test_id("inline-player")
    await expect(player).to_have_attribute("src", re.compile(r"^/api/v1/recordings/\d+$"))
    # The inline player streams the recording: it loads and knows its length.
    duration = await player.evaluate(
        """el => new Promise(ok => { el.onloadedmetadata = () => ok(el.duration); el.load() })"""
    )
    assert duration > 1
    await expect(page).to_have_url(f"{pbx_app.base_url}/clients/{client_id}")
    await context.close()
