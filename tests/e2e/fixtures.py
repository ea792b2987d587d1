"""The end-to-end fixtures: the built web app served by a real Callcard API with the demo
data (`wired_app`: with an SMSC and an SMTP server too), and Debian's Chromium driven by
Python Playwright (no `playwright install`). A plain module, so the UI benchmark in
tests/bench uses the same ones."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.peers import free_port, missing
from support.server import RunningApi, running_api
from support.sms import SmtpServer
from support.smsc import SmscProcess

from crm_api.features import enabled_features
from crm_api.platform.settings import Settings
from crm_api.seed import seed_demo
from telephony.ami.simulator import AmiSimulator

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "ui"
CHROMIUM = os.environ.get("CALLCARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--headless",
]


def _stale(dist: Path) -> bool:
    index = dist / "index.html"
    if not index.is_file():
        return True
    built = index.stat().st_mtime
    sources = [UI / "index.html", UI / "package.json", *(UI / "src").rglob("*")]
    return any(p.is_file() and p.stat().st_mtime > built for p in sources)


@pytest.fixture(scope="session")
def ui_dist() -> Path:
    """ui/dist, built now when it is missing or older than the sources."""
    dist = UI / "dist"
    if _stale(dist):
        npm = shutil.which("npm")
        if npm is None:
            missing("npm", "needed to build the web app")
        assert npm is not None
        if not (UI / "node_modules").is_dir():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=UI, check=True)
        subprocess.run([npm, "run", "build"], cwd=UI, check=True, capture_output=True)
    return dist


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The embedded default; tests that matter on both ask for postgres too."""
    return str(request.param)


@pytest.fixture
async def demo(db: async_sessionmaker[AsyncSession]) -> None:
    """The demo data `callcard run` starts with: users of every role, 50 clients."""
    async with db() as session:
        await seed_demo(session)
        await session.commit()


@pytest.fixture
async def app(settings: Settings, demo: None, ui_dist: Path) -> AsyncIterator[RunningApi]:
    settings = settings.model_copy(update={"ui_dist": ui_dist})
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    # Everything `callcard run` starts (no PBX or SMSC URL here: those stay off).
    async with running_api(settings, features=enabled_features(settings, embedded=True)) as running:
        yield running


@pytest.fixture(scope="session")
def chromium() -> str:
    if not os.path.exists(CHROMIUM):
        missing("chromium", f"{CHROMIUM} not found (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def pbx() -> AsyncIterator[AmiSimulator]:
    async with AmiSimulator() as sim:
        yield sim


@pytest.fixture
async def pbx_app(
    settings: Settings, demo: None, ui_dist: Path, pbx: AmiSimulator
) -> AsyncIterator[RunningApi]:
    """`callcard run` with CALLCARD_AMI_URL pointing at the simulator."""
    settings = settings.model_copy(
        update={"ui_dist": ui_dist, "ami_url": pbx.url, "agi_bind": f"127.0.0.1:{free_port()}"}
    )
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with running_api(settings, features=enabled_features(settings, embedded=True)) as api:
        await api.app.state.services.links.pbx.wait_connected(10)
        yield api


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def wired_app(
    settings: Settings, demo: None, ui_dist: Path, smsc: SmscProcess, smtp: SmtpServer
) -> AsyncIterator[RunningApi]:
    """`callcard run` with an SMSC and an SMTP server."""
    settings = settings.model_copy(
        update={
            "ui_dist": ui_dist,
            "smpp_url": smsc.url,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_from": "crm@example.ru",
        }
    )
    async with running_api(settings, features=enabled_features(settings, embedded=True)) as api:
        yield api
