"""`callcard sms` as its own process: it sends what the API queued, and its frames reach
the API's sockets through Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from support.factories import Actor
from support.server import RunningApi
from support.sms import make_client
from support.smsc import SmscProcess
from support.ws import Socket, open_socket

from crm_api.db.users import Role
from crm_api.settings import Settings


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_callcard_sms_process_sends_and_pushes_frames_through_redis(
    api: RunningApi, settings: Settings, smsc: SmscProcess, actors: dict[Role, Actor]
) -> None:
    manager = actors[Role.MANAGER]
    assert settings.redis_url
    env = {
        **os.environ,
        "CALLCARD_DATABASE_URL": settings.database_url,
        "CALLCARD_REDIS_URL": settings.redis_url,
        "CALLCARD_SMPP_URL": smsc.url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crm_api.cli", "sms", env=env, stderr=asyncio.subprocess.PIPE
    )
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
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode(errors="replace")
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
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode != 0
    assert b"CALLCARD_SMPP_URL is not set" in err
