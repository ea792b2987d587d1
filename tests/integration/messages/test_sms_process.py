"""`callcard sms` as its own process: it sends what the API queued, and its frames reach
the API's sockets through Redis."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from support.children import dies_with_us
from support.factories import Actor
from support.server import RunningApi, spawn_callcard
from support.sms import make_client, make_clients
from support.smsc import SmscProcess
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.platform.settings import Settings

SMS = ("-m", "crm_api.cli", "sms")


@pytest.fixture
def settings(settings: Settings, smsc: SmscProcess) -> Settings:
    """The API workers read the configuration `callcard sms` reads (one .env): they know
    SMS is set up and queue what it sends."""
    return settings.model_copy(update={"smpp_url": smsc.url})


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_callcard_sms_process_sends_and_pushes_frames_through_redis(
    api: RunningApi,
    settings: Settings,
    smsc: SmscProcess,
    actors: dict[Role, Actor],
    tmp_path: Path,
) -> None:
    manager = actors[Role.MANAGER]
    output = tmp_path / "sms.log"
    proc = await spawn_callcard(SMS, _sms_env(settings, smsc), output)
    try:
        async with api.client(manager.token) as http:
            card = await make_client(
                http, "Орлов Илья", "+7 916 700-00-01", manager_id=manager.user.id
            )
            async with open_socket(api.ws_url, manager.token) as ws:
                sock = Socket(ws)
                await sock.next_of("hello")
                sent = (
                    await http.post(f"/clients/{card['id']}/sms", json={"text": "Привет"})
                ).json()
                while True:
                    frame = await sock.next_of("sms.status", within=20)
                    if frame["data"]["status"] == "delivered":
                        break
            assert frame["data"]["outbox_id"] == sent["id"]
        assert [r["dest"] for r in smsc.rows("submit")] == ["79167000001"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            raise
    log = output.read_text(errors="replace")
    assert code == 0, log
    assert "Traceback" not in log, log


async def test_callcard_sms_without_an_smpp_url_says_so(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCARD_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_api.cli",
        "sms",
        env={**env, "CALLCARD_DATABASE_URL": "sqlite+aiosqlite:///:memory:"},
        stderr=asyncio.subprocess.PIPE,
        cwd=str(tmp_path),
        preexec_fn=dies_with_us(),
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode != 0
    assert b"CALLCARD_SMPP_URL is not set" in err


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_sms_process_killed_mid_bulk_and_restarted_sends_every_message_once(
    api: RunningApi, settings: Settings, smsc: SmscProcess, actors: dict[Role, Actor]
) -> None:
    count = 200
    start = _restartable_sms(settings, smsc)

    async with api.client(actors[Role.SUPERVISOR].token) as http:
        await make_clients(http, count, prefix="Crash")
        proc = await start()
        try:
            r = await http.post(
                "/sms/bulk",
                # Paced over 2 s: the kill below lands while the bulk is still going.
                json={"text": "{name}: новости", "filters": {"q": "Crash"}, "rate": 100},
            )
            bulk = r.json()
            await wait_for(lambda: _submits_at_least(smsc, count // 3), within=30, step=0.01)
            proc.kill()  # SIGKILL: claims, answers and receipts in flight are abandoned
            await proc.wait()
            before = len(smsc.rows("submit"))
            assert before < count
            proc = await start()

            async def all_delivered() -> bool:
                report = (await http.get(f"/sms/bulk/{bulk['id']}")).json()
                return bool(report["delivered"] == count)

            await wait_for(all_delivered, within=60, step=0.3)
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
    per_dest = collections.Counter(r["dest"] for r in smsc.rows("submit"))
    assert len(per_dest) == count
    assert {d: n for d, n in per_dest.items() if n > 1} == {}


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_receipt_answered_before_its_submit_result_survives_a_kill(
    api: RunningApi, settings: Settings, actors: dict[Role, Actor], tmp_path: Path
) -> None:
    # The SMSC answers the submit 6 s after sending its receipt: the receipt finds no part,
    # waits its grace unanswered, is answered (the SMSC will not send it again), and then
    # the worker is killed before the submit's answer is known. The next worker must
    # still mark the message delivered, and must not send it again.
    resp_delay = 6.0
    slow = SmscProcess(tmp_path / "slow.jsonl", "--resp-delay", str(resp_delay))
    await slow.start()
    start = _restartable_sms(settings, slow)

    proc = await start()
    try:
        async with api.client(actors[Role.MANAGER].token) as http:
            card = await make_client(http, "Крюков Олег", "+7 916 700-00-02")
            sent = (await http.post(f"/clients/{card['id']}/sms", json={"text": "Счёт"})).json()
            await wait_for(lambda: _rows_at_least(slow, "dlr", 1), within=30, step=0.02)
            proc.kill()  # SIGKILL: the receipt was answered, the submit's answer not yet
            await proc.wait()
            [submit] = slow.rows("submit")
            assert time.time() - submit["at"] < resp_delay, "killed too late for this test"
            proc = await start()

            async def delivered() -> bool:
                r = await http.get(f"/messages/{sent['id']}")
                return bool(r.json()["status"] == "delivered")

            await wait_for(delivered, within=30, step=0.2)
            await asyncio.sleep(5)  # past the hold: nothing goes again
        assert [r["dest"] for r in slow.rows("submit")] == ["79167000002"]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
        await slow.kill()


def _sms_env(settings: Settings, smsc: SmscProcess, **more: str) -> dict[str, str]:
    """What `callcard sms` is started with: the test's database, Redis and SMSC."""
    assert settings.redis_url
    return {
        "CALLCARD_DATABASE_URL": settings.database_url,
        "CALLCARD_REDIS_URL": settings.redis_url,
        "CALLCARD_SMPP_URL": smsc.url,
        **more,
    }


def _restartable_sms(
    settings: Settings, smsc: SmscProcess
) -> Callable[[], Awaitable[asyncio.subprocess.Process]]:
    """How a test starts `callcard sms` (again, after killing it): a dead worker's claims
    are looked at after 2 s, a message in doubt waits 4 s for its receipts."""
    env = _sms_env(settings, smsc, CALLCARD_SMS_CLAIM_S="2", CALLCARD_SMS_RECEIPT_WAIT_S="4")

    async def start() -> asyncio.subprocess.Process:
        return await spawn_callcard(SMS, env, None)

    return start


async def _rows_at_least(smsc: SmscProcess, ev: str, n: int) -> bool:
    return len(smsc.rows(ev)) >= n


async def _submits_at_least(smsc: SmscProcess, n: int) -> bool:
    return len(smsc.rows("submit")) >= n
