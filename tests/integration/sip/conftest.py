"""A SIP bridge pool on loopback ports for each test, stopped after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.peers import free_port, require_binary
from support.sip_bridge import Bridge, CallLog, ScriptedRouter, StartBridge
from support.sipp import kill_left

from telephony.sip.pool import PoolConfig, SipPool


@pytest.fixture(autouse=True)
async def no_sipp_left() -> AsyncIterator[None]:
    yield
    await kill_left()


@pytest.fixture
async def start_bridge(tmp_path: Path) -> AsyncIterator[StartBridge]:
    require_binary("sipp")  # every test here talks to SIPp
    started: list[SipPool] = []

    async def start(targets: list[str | None] | None = None, **config: Any) -> Bridge:
        workers = config.pop("workers", 1)
        router = ScriptedRouter(targets or [])
        recordings = tmp_path / "recordings"
        log = CallLog()
        pool_config = PoolConfig(
            recordings_dir=recordings,
            port=free_port(workers),
            workers=workers,
            **{"ring_timeout_s": 10.0, "route_within_s": 2.0, **config},
        )
        pool = SipPool(pool_config, log.sink, router)
        await pool.start()
        started.append(pool)
        return Bridge(
            log.events,
            log.changed,
            pool=pool,
            router=router,
            recordings=recordings,
            workdir=tmp_path,
        )

    yield start
    for pool in started:
        await pool.stop()
