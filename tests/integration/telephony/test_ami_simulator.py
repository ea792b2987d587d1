"""The AMI simulator speaks Asterisk's wire protocol: a plain socket sending the captures'
own action bytes gets the captures' own reply bytes; replays get fresh ids; the
`callcard pbx-sim` command serves generated calls to the real adapter."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable

import pytest
from support.children import dies_with_us
from support.peers import free_port

from telephony import events as ev
from telephony.ami.adapter import AmiAdapter
from telephony.ami.frames import AmiParser, Event, Response, encode_action
from telephony.ami.simulator import CAPTURES, AmiSimulator, load_capture, prepare


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():
        if loop.time() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


@pytest.fixture
async def sim() -> AsyncIterator[AmiSimulator]:
    async with AmiSimulator(bad_login_close_s=0.05) as simulator:
        yield simulator


async def converse(sim: AmiSimulator, sent: bytes) -> bytes:
    """Send a capture's action bytes; everything received until the PBX closes."""
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    writer.write(sent)
    received = await asyncio.wait_for(reader.read(-1), 5)
    writer.close()
    return received


@pytest.mark.parametrize("name", ["bad-login", "core-show-version"])
async def test_same_bytes_as_asterisk_for_the_captured_conversation(
    sim: AmiSimulator, name: str
) -> None:
    sent = (CAPTURES / f"{name}.actions.txt").read_bytes()
    expected = (CAPTURES / f"{name}.ami.txt").read_bytes()
    assert await converse(sim, sent) == expected


async def test_bad_login_closes_without_goodbye(sim: AmiSimulator) -> None:
    received = await converse(sim, (CAPTURES / "bad-login.actions.txt").read_bytes())
    assert b"Goodbye" not in received and sim.stats.failed_logins == 1
    assert sim.sessions == 0


async def test_actions_before_login_are_refused(sim: AmiSimulator) -> None:
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    writer.write(encode_action("Originate", [("ActionID", "x-1"), ("Channel", "PJSIP/101")]))
    parser = AmiParser()
    messages: list[object] = []
    while len(messages) < 2:
        messages += parser.feed(await asyncio.wait_for(reader.read(4096), 5))
    writer.close()
    refused = messages[1]
    assert isinstance(refused, Response)
    assert (refused.status, refused.action_id, refused.message) == (
        "Error",
        "x-1",
        "Permission denied",
    )
    assert sim.stats.calls == 0


async def test_replays_get_fresh_ids_and_keep_their_shape() -> None:
    first, second = prepare("redirect"), prepare("redirect")
    original = load_capture("redirect")
    assert len(first) == len(second) == len(original)
    ids = {dict(e).get("Linkedid") for e in first} - {None}
    assert len(ids) == 1 and ids.isdisjoint({dict(e).get("Linkedid") for e in second})
    assert "1795386739.12" not in ids
    for replay, captured in zip(first, original, strict=True):
        assert [k for k, _ in replay] == [k for k, _ in captured.items()]
    recording = next(v for e in first for k, v in e if k == "Value" and v.endswith(".wav"))
    assert recording == f"/var/spool/asterisk/monitor/{ids.pop()}.wav"
    channels = {v for e in first for k, v in e if k == "Channel"}
    assert not channels & {"PJSIP/trunk-0000000c", "PJSIP/101-0000000d"}
    assert all(re.fullmatch(r"PJSIP/(trunk|10[13])-[0-9a-f]{8}", c) for c in channels)
    # CDR times moved with it and keep their spans.
    cdr = next(dict(e) for e in first if dict(e).get("Event") == "Cdr")
    assert cdr["StartTime"] != "2026-11-22 22:32:19" and cdr["Duration"] == "5"


async def test_originate_carries_the_request_into_the_replay(sim: AmiSimulator) -> None:
    seen: list[ev.CallEvent] = []

    async def sink(event: ev.CallEvent) -> None:
        seen.append(event)

    adapter = AmiAdapter(sim.url, sink)
    await adapter.start()
    try:
        await adapter.wait_connected()
        reader, writer = await asyncio.open_connection(sim.host, sim.port)
        writer.write(
            encode_action("Login", [("Username", "crm"), ("Secret", "crmsecret")])
            + encode_action(
                "Originate",
                [
                    ("ActionID", "mine-1"),
                    ("Channel", "PJSIP/107"),
                    ("Context", "internal"),
                    ("Exten", "79035550000"),
                    ("Priority", "1"),
                    ("Async", "true"),
                    ("Variable", "CRM_CALL_ID=crm-31"),
                    ("Variable", "CRM_CAMPAIGN=spring"),
                ],
            )
        )
        parser = AmiParser()
        events: list[Event] = []
        async with asyncio.timeout(5):
            while not any(e.name == "Cdr" for e in events):
                events += [m for m in parser.feed(await reader.read(65536)) if isinstance(m, Event)]
        writer.close()
        response = next(e for e in events if e.name == "OriginateResponse")
        assert (response["ActionID"], response["Channel"].split("-")[0]) == (
            "mine-1",
            "PJSIP/107",
        )
        variables = {e["Variable"]: e["Value"] for e in events if e.name == "VarSet"}
        assert variables["CRM_CALL_ID"] == "crm-31"
        assert variables["CRM_CAMPAIGN"] == "spring"
        trunk = next(e for e in events if e.name == "Newchannel" and "trunk" in e["Channel"])
        assert trunk["Linkedid"] == response["Uniqueid"]
        await until(lambda: any(isinstance(e, ev.CallEnded) for e in seen))
        started = seen[0]
        assert isinstance(started, ev.CallStarted)
        assert (started.crm_call_id, started.caller, started.callee) == (
            "crm-31",
            "107",
            "79035550000",
        )
    finally:
        await adapter.stop()


async def test_pbx_sim_command_generates_calls_for_the_adapter() -> None:
    port = free_port()
    command = ["pbx-sim", "--fast", "--port", str(port), "--rate", "20", "--duration", "3"]
    scenarios = ["--scenario", "incoming-answered", "--scenario", "queue-call"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_api.cli",
        *command,
        *scenarios,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=dies_with_us(),
    )
    ended: list[ev.CallEnded] = []

    async def sink(event: ev.CallEvent) -> None:
        if isinstance(event, ev.CallEnded):
            ended.append(event)

    assert process.stdout is not None
    async with asyncio.timeout(60):  # the command is up: it says where it listens
        banner = (await process.stdout.readline()).decode()
    assert f"AMI simulator on ami://crm:crmsecret@127.0.0.1:{port}" in banner
    adapter = AmiAdapter(f"ami://crm:crmsecret@127.0.0.1:{port}", sink, backoff_max=0.2)
    await adapter.start()
    try:
        await adapter.wait_connected(10)
        # Every call the command started ends on the adapter: the command waits for a
        # listener before its first call and sends each call whole before it exits.
        stdout, _ = await asyncio.wait_for(process.communicate(), 30)
        output = stdout.decode()
        assert process.returncode == 0, output
        summary = re.search(r"(\d+) calls, \d+ events sent", output)
        assert summary, output
        started = int(summary[1])
        await until(lambda: len(ended) >= started, within=10)
    finally:
        await adapter.stop()
        if process.returncode is None:
            process.kill()
    assert len(ended) == started
    assert {e.disposition for e in ended} == {ev.Disposition.ANSWERED}
    # The demo's operator (104) and managers ring in turn instead of the captures' phones.
    assert {e.agents for e in ended} <= {("101",), ("102",), ("103",), ("104",)}
    assert ("104",) in {e.agents for e in ended}
    assert len({e.call_id for e in ended}) == len(ended)
