"""The real AMI adapter over TCP against the AMI simulator replaying Asterisk captures:
order, login failures, reconnect and resync, garbage, the Ping watchdog, Originate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from telephony import events as ev
from telephony.ami.adapter import AmiAdapter, parse_ami_url
from telephony.ami.frames import Event, encode_message
from telephony.ami.simulator import AmiSimulator, prepare
from telephony.ami.translator import CallTranslator
from telephony.pbx import OriginateRequest, PbxError


async def until(check: Callable[[], bool], within: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def caught_up(amp: AmiAdapter) -> None:
    """Everything the PBX sent so far was read and reached the sink: the answer to a
    command asked now comes after it on the wire."""
    await amp.command("core show version")
    await amp.drain()


class Sink:
    def __init__(self) -> None:
        self.events: list[ev.CallEvent] = []

    async def __call__(self, event: ev.CallEvent) -> None:
        self.events.append(event)

    def of(self, call_id: str) -> list[ev.CallEvent]:
        return [e for e in self.events if e.call_id == call_id]

    def types(self, call_id: str) -> list[str]:
        return [type(e).__name__ for e in self.of(call_id)]

    def ended(self, call_id: str) -> list[ev.CallEnded]:
        return [e for e in self.of(call_id) if isinstance(e, ev.CallEnded)]


@pytest.fixture
async def sim() -> AsyncIterator[AmiSimulator]:
    async with AmiSimulator(bad_login_close_s=0.05) as simulator:
        yield simulator


AdapterFactory = Callable[..., Awaitable[tuple[AmiAdapter, Sink]]]


@pytest.fixture
async def adapter(sim: AmiSimulator) -> AsyncIterator[AdapterFactory]:
    started: list[AmiAdapter] = []

    async def make(
        url: str | None = None,
        connect: bool = True,
        sink: Callable[[ev.CallEvent], Awaitable[None]] | None = None,
        **options: Any,
    ) -> Any:
        sink = sink or Sink()
        settings: dict[str, Any] = {
            "backoff_min": 0.05,
            "backoff_max": 0.2,
            "connect_timeout": 1.0,
            "action_timeout": 1.0,
            "translator": CallTranslator(cdr_grace_s=0.3),
            **options,
        }
        instance = AmiAdapter(url or sim.url, sink, **settings)
        await instance.start()
        started.append(instance)
        if connect:
            await instance.wait_connected(5.0)
        return instance, sink

    yield make
    for instance in started:
        await instance.stop()


def linked_id(events: list[list[tuple[str, str]]]) -> str:
    return next(dict(e)["Linkedid"] for e in events if dict(e).get("Event") == "Newchannel")


def index_of(events: list[list[tuple[str, str]]], name: str, last: bool = False) -> int:
    found = [i for i, e in enumerate(events) if dict(e).get("Event") == name]
    return found[-1] if last else found[0]


def test_ami_url_parsing() -> None:
    url = parse_ami_url("ami://crm:s%40cret@pbx.local:5039")
    assert (url.host, url.port, url.username, url.secret) == ("pbx.local", 5039, "crm", "s@cret")
    assert parse_ami_url("ami://crm:x@10.0.0.1").port == 5038
    with pytest.raises(ValueError, match="not an AMI URL"):
        parse_ami_url("http://crm:x@10.0.0.1:5038")


async def test_events_arrive_in_order_over_tcp(sim: AmiSimulator, adapter: AdapterFactory) -> None:
    amp, sink = await adapter()
    assert amp.status.connected and amp.status.version == "11.0.0"
    played = {}
    for name in ("incoming-answered", "queue-call", "redirect"):
        played[name] = linked_id(await sim.play(name))
    await until(lambda: all(sink.ended(c) for c in played.values()), what="three calls ended")
    await amp.drain()
    # The same bytes through a translator directly: the adapter adds, drops and reorders nothing.
    for name, call_id in played.items():
        direct = CallTranslator()
        expected: list[str] = []
        for pairs in prepare(name):
            translated = direct.feed(Event(dict(pairs)), sink.events[0].at)
            expected += [type(e).__name__ for e in translated]
        assert sink.types(call_id) == expected
    queue = sink.ended(played["queue-call"])[0]
    assert queue.answered_by == "102" and queue.agents == ("102",)
    assert queue.caller == "+74951112233"
    assert queue.talk_s == pytest.approx(4, abs=1)
    redirect = sink.ended(played["redirect"])[0]
    assert redirect.agents == ("101", "103")
    assert amp.status.live_calls == 0 and amp.status.malformed == 0
    status = amp.status.as_dict()
    assert status["connected"] is True and status["url"] == f"ami://crm@127.0.0.1:{sim.port}"
    assert status["last_event_at"] is not None and "crmsecret" not in str(status)


async def test_bad_login_gives_a_clear_error_and_retries(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    url = sim.url.replace(sim.secret, "wrong")
    amp, _ = await adapter(url=url, connect=False, backoff_min=0.01, backoff_max=0.04)
    await until(lambda: sim.stats.failed_logins >= 4, what="four login attempts")
    assert not amp.connected
    assert amp.status.backoff_s == 0.04  # 0.01, 0.02, 0.04, then capped
    assert amp.status.last_error == "AMI login refused: Authentication failed"
    assert sim.stats.logins == 0
    with pytest.raises(PbxError) as refused:
        await amp.originate(OriginateRequest(crm_call_id="c-1", agent="102", number="79160000000"))
    assert refused.value.reason == "pbx_unreachable"
    assert sim.actions_named("Originate") == []
    # The secret is fixed on the PBX side: the next retry gets in.
    sim.secret = "wrong"
    await amp.wait_connected(5.0)
    assert amp.status.connects == 1


async def test_reconnect_mid_call_then_resync_without_duplicates(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    amp, sink = await adapter()
    events = prepare("incoming-answered")
    call_id = linked_id(events)
    bridged = index_of(events, "BridgeEnter", last=True)
    await sim.emit(events[: bridged + 1])
    await until(lambda: "CallAnswered" in sink.types(call_id), what="answer")
    sim.drop_connections()
    await until(lambda: amp.status.connects == 2, what="reconnect")
    assert amp.status.last_error == "AMI connection closed by the PBX"
    assert len(sim.actions_named("CoreShowChannels")) == 2  # a resync after each login
    await sim.emit(events[bridged + 1 :])
    await until(lambda: bool(sink.ended(call_id)), what="end")
    await caught_up(amp)
    assert sink.types(call_id) == [
        "CallStarted",
        "RecordingStarted",
        "CallRinging",
        "CallAnswered",
        "CallEnded",
    ]
    (ended,) = sink.ended(call_id)
    assert ended.disposition == ev.Disposition.ANSWERED and ended.talk_s == pytest.approx(3)


async def test_adapter_started_mid_call_learns_it_from_core_show_channels(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    events = prepare("queue-call")
    call_id = linked_id(events)
    bridged = index_of(events, "BridgeEnter", last=True)
    await sim.emit(events[: bridged + 1])  # nobody is listening yet
    _amp, sink = await adapter()
    await until(lambda: "CallAnswered" in sink.types(call_id), what="resynced call")
    started = sink.of(call_id)[0]
    assert isinstance(started, ev.CallStarted)
    assert (started.direction, started.caller, started.did) == (
        ev.Direction.INBOUND,
        "+74951112233",
        "74951234569",
    )
    await sim.emit(events[bridged + 1 :])
    await until(lambda: bool(sink.ended(call_id)), what="end")
    assert sink.types(call_id) == ["CallStarted", "CallAnswered", "CallEnded"]
    assert sink.ended(call_id)[0].agents == ("102",)


async def test_call_that_ended_while_disconnected_ends_once_after_resync(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    amp, sink = await adapter(backoff_min=0.3)
    events = prepare("incoming-agi-routed")
    call_id = linked_id(events)
    bridged = index_of(events, "BridgeEnter", last=True)
    await sim.emit(events[: bridged + 1])
    await until(lambda: "CallAnswered" in sink.types(call_id), what="answer")
    sim.drop_connections()
    await sim.emit(events[bridged + 1 :])  # the hangup happens while the link is down
    await until(lambda: bool(sink.ended(call_id)), what="end after resync")
    (ended,) = sink.ended(call_id)
    assert ended.disposition == ev.Disposition.ANSWERED and ended.agents == ("102",)
    await sim.play("incoming-answered")  # the link works on
    await caught_up(amp)
    assert len(sink.ended(call_id)) == 1


async def test_garbage_frames_are_skipped(sim: AmiSimulator, adapter: AdapterFactory) -> None:
    amp, sink = await adapter()
    events = prepare("incoming-missed")
    call_id = linked_id(events)
    half = len(events) // 2
    await sim.emit(events[:half])
    sim.inject(b"\x00\xff garbage \xfe\r\n\r\n")
    sim.inject(b"more junk\r\n")  # glued to the next real event
    name = "Иван Петров"
    cyrillic = encode_message([("Event", "UserEvent"), ("UserEvent", name)])
    cut = cyrillic.index(name.encode()) + 1
    sim.inject(cyrillic[:cut])
    await asyncio.sleep(0.05)  # separate reads: the character is split across them
    sim.inject(cyrillic[cut:])
    await sim.emit(events[half:])
    await until(lambda: bool(sink.ended(call_id)), what="end")
    assert amp.status.malformed == 2
    assert sink.ended(call_id)[0].disposition == ev.Disposition.MISSED
    assert amp.connected


async def test_ping_watchdog_detects_a_silent_server(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    amp, _ = await adapter(ping_interval=0.1, ping_timeout=0.5)
    await until(lambda: len(sim.actions_named("Ping")) >= 2, what="pings answered")
    assert amp.connected
    sim.silent = True
    await until(lambda: not amp.connected, what="silent server declared dead")
    assert amp.status.last_error == "Asterisk silent: no answer to Ping within 0.5s"
    sim.silent = False
    await until(lambda: amp.connected, what="reconnect")
    assert amp.status.connects == 2


async def test_actions_are_bounded_by_a_timeout(sim: AmiSimulator, adapter: AdapterFactory) -> None:
    amp, _ = await adapter(action_timeout=0.5)
    sim.silent = True
    with pytest.raises(PbxError) as late:
        await amp.command("core show version")
    assert late.value.reason == "pbx_timeout"
    sim.silent = False
    assert (await amp.command("core show version"))[0].startswith("Asterisk 22.10.1")


async def test_originate_is_not_resent_after_a_reconnect(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    amp, sink = await adapter(action_timeout=5.0)
    sim.silent = True  # it reads the Originate and never answers
    request = OriginateRequest(crm_call_id="crm-9", agent="102", number="79161234567")
    pending = asyncio.create_task(amp.originate(request))
    await until(lambda: len(sim.actions_named("Originate")) == 1, what="Originate sent")
    sim.drop_connections()
    with pytest.raises(PbxError) as lost:
        await pending
    assert lost.value.reason == "pbx_unreachable"
    sim.silent = False
    await until(lambda: amp.status.connects == 2, what="reconnect")
    await caught_up(amp)  # what the adapter sent before the command has reached the PBX
    assert len(sim.actions_named("Originate")) == 1
    assert sink.events == []


async def test_originate_while_disconnected_fails_at_once(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    amp, _ = await adapter()
    await sim.stop()
    await until(lambda: not amp.connected, what="disconnect")
    with pytest.raises(PbxError) as down:
        await amp.originate(OriginateRequest(crm_call_id="c-2", agent="102", number="7916"))
    assert down.value.reason == "pbx_unreachable"


async def test_click_to_call_originate_gives_the_outbound_call(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    amp, sink = await adapter()
    request = OriginateRequest(
        crm_call_id="crm-42", agent="105", number="79990001122", caller_id="Callcard <105>"
    )
    await amp.originate(request)
    (sent,) = sim.actions_named("Originate")
    assert dict(sent.items()) | {"ActionID": "x"} == {
        "Action": "Originate",
        "ActionID": "x",
        "Channel": "PJSIP/105",
        "Context": "internal",
        "Exten": "79990001122",
        "Priority": "1",
        "CallerID": "Callcard <105>",
        "Timeout": "30000",
        "Async": "true",
        "Variable": "CRM_CALL_ID=crm-42",
    }
    await until(lambda: any(isinstance(e, ev.CallEnded) for e in sink.events), what="end")
    started, *_, ended = sink.events
    assert isinstance(started, ev.CallStarted) and isinstance(ended, ev.CallEnded)
    assert {e.crm_call_id for e in sink.events} == {"crm-42"}
    assert (started.direction, started.caller, started.callee) == (
        ev.Direction.OUTBOUND,
        "105",
        "79990001122",
    )
    assert ended.disposition == ev.Disposition.ANSWERED and ended.agents == ("105",)


@pytest.mark.parametrize(
    ("code", "reason"),
    [(0, "extension_offline"), (5, "agent_busy"), (3, "agent_no_answer"), (8, "failed")],
)
async def test_originate_failure_reasons(
    sim: AmiSimulator, adapter: AdapterFactory, code: int, reason: str
) -> None:
    amp, sink = await adapter()
    sim.originate_failures["104"] = code
    await amp.originate(OriginateRequest(crm_call_id="crm-5", agent="104", number="79160000000"))
    await until(lambda: any(isinstance(e, ev.OriginateFailed) for e in sink.events), what="fail")
    await until(lambda: amp.translator.live_count == 0, what="the agent's leg forgotten")
    await amp.drain()
    failed = sink.events[-1]
    assert isinstance(failed, ev.OriginateFailed)
    assert (failed.crm_call_id, failed.reason) == ("crm-5", reason)
    kinds = [type(e).__name__ for e in sink.events]
    if code in (3, 5):
        # The agent's phone rang (or refused): the call existed, then failed; it never ends
        # as a call of its own.
        assert kinds == ["CallStarted", "CallRinging", "OriginateFailed"]
        started = sink.events[0]
        assert isinstance(started, ev.CallStarted)
        assert (started.direction, started.callee) == (ev.Direction.OUTBOUND, "79160000000")
        assert failed.call_id == started.call_id
    else:
        assert kinds == ["OriginateFailed"] and failed.call_id == "crm-5"


async def test_redirect_and_hangup_target_the_client_leg(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    amp, sink = await adapter()
    events = prepare("incoming-answered")
    call_id = linked_id(events)
    bridged = index_of(events, "BridgeEnter", last=True)
    await sim.emit(events[: bridged + 1])
    await until(lambda: "CallAnswered" in sink.types(call_id), what="answer")
    await amp.redirect(call_id, "103")
    await amp.hangup(call_id)
    redirect, hangup = sim.actions_named("Redirect")[0], sim.actions_named("Hangup")[0]
    trunk = dict(events[0])["Channel"]
    assert (redirect["Channel"], redirect["Context"], redirect["Exten"]) == (
        trunk,
        "internal",
        "103",
    )
    assert hangup["Channel"] == trunk
    with pytest.raises(PbxError) as unknown:
        await amp.redirect("1.1", "103")
    assert unknown.value.reason == "call_not_found"
    # The PBX hangs every leg up; the rest of the recorded call never happens.
    await until(lambda: bool(sink.ended(call_id)), what="end")
    (ended,) = sink.ended(call_id)
    assert (ended.disposition, ended.cause, ended.agents) == (
        ev.Disposition.ANSWERED,
        16,
        ("101",),
    )
    await sim.emit(events[bridged + 1 :])
    assert sim.live_channels == []
    with pytest.raises(PbxError) as gone:
        await amp.hangup(call_id)
    assert gone.value.reason == "call_not_found"
    assert len(sink.ended(call_id)) == 1


async def test_a_failing_sink_does_not_stop_the_stream(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    seen: list[ev.CallEvent] = []
    calls = 0

    async def flaky(event: ev.CallEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database down for a moment")
        seen.append(event)

    await adapter(sink=flaky)
    call_id = linked_id(await sim.play("incoming-busy"))
    await until(lambda: any(isinstance(e, ev.CallEnded) for e in seen), what="end")
    assert [type(e).__name__ for e in seen if e.call_id == call_id][-1] == "CallEnded"


async def test_a_pbx_hanging_up_during_login_is_noticed_at_once(
    adapter: AdapterFactory,
) -> None:
    hellos = 0

    async def full(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hellos
        hellos += 1
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        await reader.readuntil(b"\r\n\r\n")  # the Login, then hang up (session limit)
        writer.close()

    server = await asyncio.start_server(full, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        # A login timeout far longer than the wait: the close itself must fail the Login.
        amp, _ = await adapter(
            url=f"ami://crm:x@127.0.0.1:{port}", connect=False, connect_timeout=60.0
        )
        await until(lambda: hellos >= 2, within=10.0, what="a second attempt")
        assert amp.status.last_error == (
            "AMI link lost during Login: AMI connection closed by the PBX"
        )
        assert not amp.connected
    finally:
        server.close()


async def test_stop_delivers_what_was_received_and_a_lost_link_retries_at_once(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    delivered: list[ev.CallEvent] = []

    async def slow(event: ev.CallEvent) -> None:
        await asyncio.sleep(0.02)  # a database commit per event
        delivered.append(event)

    amp, _ = await adapter(sink=slow, backoff_min=0.05, backoff_max=30.0)
    for connects in (2, 3, 4):
        sim.drop_connections()
        await until(lambda: amp.status.connects == connects, what="reconnect")  # noqa: B023
        # Each link worked before it broke: the backoff starts over every time.
        assert amp.status.backoff_s == 0.05
    assert amp.status.as_dict()["connects"] == 4
    call_id = linked_id(await sim.play("incoming-answered"))
    await until(lambda: amp.status.live_calls == 0 and amp.status.events > 30, what="received")
    await amp.stop()
    assert [type(e).__name__ for e in delivered if e.call_id == call_id][-1] == "CallEnded"
    await amp.stop()  # twice is harmless


async def test_a_refused_login_on_a_pbx_that_keeps_the_line_open_is_retried(
    adapter: AdapterFactory,
) -> None:
    hellos = 0

    async def stubborn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hellos
        hellos += 1
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        login = (await reader.readuntil(b"\r\n\r\n")).decode()
        action_id = next(
            line.split(": ", 1)[1] for line in login.split("\r\n") if line.startswith("ActionID")
        )
        writer.write(
            encode_message(
                [("Response", "Error"), ("ActionID", action_id), ("Message", "Not allowed")]
            )
        )
        await reader.read()  # never closes: the client has to

    server = await asyncio.start_server(stubborn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        amp, _ = await adapter(url=f"ami://crm:x@127.0.0.1:{port}", connect=False)
        await until(lambda: hellos >= 3, what="the refused connections dropped and retried")
        assert amp.status.last_error == "AMI login refused: Not allowed"
        assert not amp.connected and amp.status.connects == 0
    finally:
        server.close()


async def test_pbx_down_backs_off_until_it_is_back_and_stop_ends_the_retries(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    amp, _ = await adapter(backoff_min=0.02, backoff_max=0.08)
    await sim.stop()
    await until(lambda: amp.status.backoff_s == 0.08, what="the backoff at its cap")
    assert not amp.connected
    assert amp.status.last_error is not None and str(sim.port) in amp.status.last_error
    await sim.start()  # same port
    await amp.wait_connected(5.0)
    assert amp.status.connects == 2 and sim.stats.logins == 2
    # Stopped while the PBX is away: a scheduled reconnect must not happen after all.
    await sim.stop()
    await until(lambda: not amp.connected, what="disconnect")
    await amp.stop()
    await sim.start()
    # A timer that must not fire has no signal: several backoff periods (0.08 s) go by.
    await asyncio.sleep(0.3)
    assert sim.stats.logins == 2 and not amp.connected


async def test_actions_go_out_in_the_order_given_and_a_bad_header_sends_nothing(
    sim: AmiSimulator, adapter: AdapterFactory
) -> None:
    amp, _ = await adapter()
    request = OriginateRequest(crm_call_id="crm-7", agent="105", number="79990001122")
    await amp.originate(request)
    (sent,) = sim.actions_named("Originate")
    # panoramisk would sort the headers; Asterisk reads them in the order written.
    assert [key for key, _ in sent.items()] == [
        "Action",
        "ActionID",
        "Channel",
        "Context",
        "Exten",
        "Priority",
        "Timeout",
        "Async",
        "Variable",
    ]
    injected = OriginateRequest(
        crm_call_id="crm-8", agent="105", number="7999", caller_id="x\r\nAction: Hangup"
    )
    with pytest.raises(ValueError, match="single line"):
        await amp.originate(injected)
    # The link is intact, and what was sent before the command has reached the PBX.
    assert (await amp.command("core show version"))[0].startswith("Asterisk")
    assert len(sim.actions_named("Originate")) == 1 and sim.actions_named("Hangup") == []


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (None, "CoreShowChannels list did not complete"),
        ("Error", "CoreShowChannels refused: Permission denied"),
    ],
)
async def test_a_resync_that_fails_drops_the_link_and_retries(
    adapter: AdapterFactory, answer: str | None, error: str
) -> None:
    hellos = 0

    async def no_list(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hellos
        hellos += 1
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        while block := (await reader.readuntil(b"\r\n\r\n")).decode():
            headers = dict(line.split(": ", 1) for line in block.strip().split("\r\n"))
            reply = [("ActionID", headers["ActionID"])]
            if headers["Action"] == "Login":
                writer.write(encode_message([("Response", "Success"), *reply]))
            elif answer is not None:
                writer.write(
                    encode_message([("Response", answer), *reply, ("Message", "Permission denied")])
                )

    server = await asyncio.start_server(no_list, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        amp, _ = await adapter(url=f"ami://crm:x@127.0.0.1:{port}", action_timeout=0.2)
        await until(lambda: hellos >= 2 and amp.status.last_error is not None, what="a retry")
        assert amp.status.last_error == error
        assert amp.status.connects >= 1
    finally:
        server.close()
