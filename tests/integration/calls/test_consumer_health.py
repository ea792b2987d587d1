"""/health and /health/ready tell a call-event consumer that does not consume (Redis away)
and a stream that lags (the database away while events wait), and both recover by
themselves. Real Redis (a private server the test stops and starts), real PostgreSQL
behind a proxy the test cuts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aredis
from support.call_events import answered_call, appending_sink
from support.restartable_redis import restartable_redis
from support.server import RunningApi, running_api
from support.servers import PgServer
from support.tcp_proxy import CuttableProxy
from support.waiting import wait_for

from crm_api.calls.pipeline import CALL_EVENTS_STREAM, start_call_events
from crm_api.platform.settings import Settings

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


async def probe(api: RunningApi, path: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api.base_url + "/api/v1", timeout=10) as http:
        r = await http.get(path)
        return r.status_code, r.json()


def answering(api: RunningApi, path: str, status: int, needle: str = "") -> Any:
    async def check() -> dict[str, Any] | None:
        code, body = await probe(api, path)
        return body if code == status and needle in str(body) else None

    return check


async def test_health_reports_a_consumer_that_does_not_consume_and_a_stream_that_lags(
    settings: Settings, tmp_path: Path, pg_server: PgServer
) -> None:
    async with (
        CuttableProxy(pg_server.host, pg_server.port) as db_link,
        restartable_redis(tmp_path / "redis", persistent=False) as redis,
    ):
        pg = f"@{pg_server.host}:{pg_server.port}/"
        url = settings.database_url.replace(pg, f"@127.0.0.1:{db_link.port}/")
        settings = settings.model_copy(
            update={"redis_url": redis.url, "database_url": url, "stream_lag_alert_s": 0.5}
        )
        call_events = start_call_events
        async with running_api(settings, features=(call_events,)) as api:
            ready = await wait_for(answering(api, "/health/ready", 200))
            (consumer,) = ready["consumers"]
            assert consumer["stream"] == CALL_EVENTS_STREAM and consumer["consuming"]

            await redis.stop()  # without persistence: its consumer group goes too
            body = await wait_for(answering(api, "/health/ready", 503, "not consuming"))
            assert body["consumers"][0]["consuming"] is False
            assert (await probe(api, "/health"))[0] == 503
            await redis.start()
            await wait_for(answering(api, "/health", 200))  # consuming again, by itself
            await wait_for(answering(api, "/health/ready", 200))

            # The database goes away while a call's events wait: the stream lags.
            await db_link.cut()
            client = aredis.Redis.from_url(redis.url)
            sink = appending_sink(client, settings.call_partitions)
            for event in answered_call("1796190001.1"):
                await sink(event)
            body = await wait_for(answering(api, "/health/ready", 503, "has waited"))
            assert body["consumers"][0]["backlog"]["pending"] > 0
            await db_link.restore()
            await wait_for(answering(api, "/health/ready", 200), within=20)
            await client.aclose()
