"""The demo as a new user runs it: `callcard run` with CALLCARD_AMI_URL at `callcard pbx-sim`
(human timing, its defaults), and the demo operator, logged in, sees a call pop on the
console and stay while the phone rings, then the call answered."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2e.helpers import login, new_context, shoot
from playwright.async_api import Browser, expect
from support.children import dies_with_us
from support.peers import free_port
from support.server import RunningApi, running_api

from crm_api.features import enabled_features
from crm_api.platform.settings import Settings


@pytest.fixture
async def pbx_sim() -> AsyncIterator[int]:
    """`callcard pbx-sim` at its human timing, an answered call every 10 s, each ringing
    the demo operator (so the test need not wait for the rotation to come round)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_api.cli",
        "pbx-sim",
        "--port",
        str(port),
        "--scenario",
        "incoming-answered",
        "--rate",
        "0.1",
        "--agents",
        "104",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=dies_with_us(),
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        while b"AMI simulator on" not in await process.stdout.readline():
            pass
    yield port
    process.terminate()
    await process.wait()


@pytest.fixture
async def demo_app(
    settings: Settings, demo: None, ui_dist: Path, pbx_sim: int
) -> AsyncIterator[RunningApi]:
    settings = settings.model_copy(
        update={
            "ui_dist": ui_dist,
            "ami_url": f"ami://crm:crmsecret@127.0.0.1:{pbx_sim}",
            "agi_bind": f"127.0.0.1:{free_port()}",
        }
    )
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with running_api(settings, features=enabled_features(settings, embedded=True)) as api:
        yield api


async def test_demo_operator_sees_the_pop_while_the_phone_rings(
    demo_app: RunningApi, browser: Browser
) -> None:
    context = await new_context(browser, demo_app, "ru")
    page = await context.new_page()
    await login(page, "operator", "operator-demo-1")  # extension 104
    await page.goto("/console")
    # A call rings the operator for seconds: the pop is there, ringing.
    ringing = page.locator("[data-testid=call-panel][data-state=ringing]").first
    await expect(ringing).to_be_visible(timeout=40_000)
    await shoot(page, "console-pbx-sim-ringing-ru")
    # It stays until the operator's phone answers (the capture's call): then it talks.
    answered = page.locator("[data-testid=call-panel][data-state=answered]").first
    await expect(answered).to_be_visible(timeout=30_000)
    await context.close()
