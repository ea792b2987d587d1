"""What an operator's Prometheus and log search see of a call: the AMI simulator replays a
real capture into Callcard (adapter, call-event stream, API), /metrics is scraped before and
after, and the call's log lines carry its id."""

from __future__ import annotations

import io
import json
import logging

import pytest
from redis.asyncio import Redis
from support.call_events import answered_call as call_events
from support.call_events import appending_sink, handled
from support.factories import Actor
from support.metrics import scrape
from support.server import RunningApi, running_api
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.calls.pipeline import start_call_events
from crm_api.platform.logs import log_handler
from crm_api.platform.settings import Settings
from telephony.ami.simulator import AmiSimulator


async def answered_call(api: RunningApi, pbx: AmiSimulator, manager: Actor) -> dict:
    """Plays an answered call to the manager's phone; its pop, once the call has ended."""
    async with open_socket(api.ws_url, manager.token) as conn:
        sock = Socket(conn)
        await sock.next_of("hello")
        await pbx.play("incoming-answered")
        pop = await sock.next_of("call.ringing")
        await sock.next_of("call.ended")
    return pop


async def test_metrics_move_with_a_call(
    telephony_api: RunningApi, pbx: AmiSimulator, actors: dict[Role, Actor], backend: str
) -> None:
    metrics_url = telephony_api.base_url + "/metrics"
    before = await scrape(metrics_url)
    assert before.value("callcard_ami_up") == 1
    assert before.value("callcard_ws_clients") == 0
    manager = actors[Role.MANAGER]
    async with open_socket(telephony_api.ws_url, manager.token) as conn:
        await Socket(conn).next_of("hello")
        assert (await scrape(metrics_url)).value("callcard_ws_clients") == 1
    async with telephony_api.client(manager.token) as http:
        assert (await http.get("/clients")).status_code == 200
    await answered_call(telephony_api, pbx, manager)

    async def written() -> bool:
        after = await scrape(metrics_url)
        ended = after.value("callcard_call_events_handled_total", type="CallEnded")
        return ended > before.value("callcard_call_events_handled_total", type="CallEnded")

    await wait_for(written)
    after = await scrape(metrics_url)
    for event in ("CallStarted", "CallRinging", "CallAnswered"):
        name = "callcard_call_events_handled_total"
        assert after.value(name, type=event) > before.value(name, type=event), event
    assert after.value("callcard_screen_pop_seconds_count") == (
        before.value("callcard_screen_pop_seconds_count") + 1
    )
    assert after.value("callcard_frames_published_total", type="call.ringing") >= 1
    assert after.value("callcard_calls_in_progress") == 0
    assert after.value("callcard_ws_clients") == 0
    route = {"method": "GET", "route": "list_clients", "status": "200"}
    assert after.value("callcard_http_request_duration_seconds_count", **route) == 1
    if backend == "postgres":  # the Redis stream, read by the partitions this worker holds
        assert after.value("callcard_call_partitions_owned") == 8
        assert after.total("callcard_stream_lag_entries", stream="callcard:call-events") == 0
        groups = {
            dict(labels)["group"]
            for name, labels in after.samples
            if name == "callcard_stream_pending_entries"
        }
        assert groups == {f"calls:p{p}" for p in range(8)}


@pytest.mark.parametrize("backend", ["postgres"])  # the Redis stream, read in batches
async def test_two_pbxs_ringing_one_phone_under_one_linkedid_count_a_pop_each(
    settings: Settings, actors: dict[Role, Actor]
) -> None:
    """Both PBXs' rings are read in one batch, before either call pops: each pop's
    latency is its own PBX's ring's."""
    redis = Redis.from_url(str(settings.redis_url))
    for pbx in ("office-a", "office-b"):
        sink = appending_sink(redis, settings.call_partitions, pbx=pbx)
        started, _, ringing, *_ = call_events("1700000000.1", agent="101")
        for event in (started, ringing):
            await sink(event)
    await redis.aclose()
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    async with running_api(settings, features=(start_call_events,)) as api:
        await wait_for(lambda: handled(api.app.state.services))
        metrics = await scrape(api.base_url + "/metrics")
    assert metrics.value("callcard_frames_published_total", type="call.ringing") == 2
    assert metrics.value("callcard_screen_pop_seconds_count") == 2


async def test_every_log_line_of_a_call_carries_its_id(
    telephony_api: RunningApi, pbx: AmiSimulator, actors: dict[Role, Actor]
) -> None:
    out = io.StringIO()
    handler = log_handler("json", out)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        pop = await answered_call(telephony_api, pbx, actors[Role.MANAGER])
        call_id = pop["data"]["call_id"]

        async def ended_line() -> list[dict]:
            lines = [json.loads(line) for line in out.getvalue().splitlines()]
            return [x for x in lines if x["message"].startswith("call ended")] and lines

        lines = await wait_for(ended_line)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    [ended] = [x for x in lines if x["message"].startswith("call ended")]
    assert ended["call_id"] == call_id
    assert "answered" in ended["message"]
    # Whatever names the call in its text is tagged with it too.
    for line in lines:
        if call_id in line["message"]:
            assert line.get("call_id") == call_id, line
