"""The FastAGI routing server over TCP, spoken to like Asterisk does (the environment is
the captured session's), and like the things that break naive servers do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from telephony.ami.agi import AgiRequest, FastAgiServer, parse_environment, parse_reply
from telephony.ami.simulator import CAPTURES

CAPTURE = CAPTURES / "incoming-agi-routed.fastagi.txt"


def captured_environment() -> bytes:
    """The bytes Asterisk sent before its first reply: every line up to the empty one."""
    head, _, _ = CAPTURE.read_bytes().partition(b"\n\n")
    return head + b"\n\n"


class Recorder:
    def __init__(self, answers: list[str | None] | None = None, delay: float = 0.0) -> None:
        self.asked: list[AgiRequest] = []
        self.answers = answers or ["102"]
        self.delay = delay

    async def __call__(self, request: AgiRequest) -> str | None:
        self.asked.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.answers[min(len(self.asked), len(self.answers)) - 1]


async def serve(router: Recorder, **kwargs: float) -> tuple[FastAgiServer, int]:
    server = FastAgiServer(router, fallback="queue:sales", **kwargs)  # type: ignore[arg-type]
    return server, await server.start("127.0.0.1", 0)


@pytest.fixture
async def router() -> AsyncIterator[Recorder]:
    yield Recorder()


async def ask(port: int, env: bytes, reply: bytes | None = b"200 result=1\n") -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env)
    await writer.drain()
    command = (await asyncio.wait_for(reader.readline(), 5)).decode()
    if reply is not None:
        writer.write(reply)
        await writer.drain()
    # The server closes after the answer.
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    return command


async def settle(server: FastAgiServer) -> None:
    for _ in range(100):
        if not server._sessions:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("FastAGI sessions did not finish")


def test_captured_environment_parses() -> None:
    lines = captured_environment().decode().splitlines()
    request = parse_environment([line for line in lines if line])
    assert request.script == "route"
    assert request.call_id == "1795386718.8"
    assert request.channel == "PJSIP/trunk-00000008"
    assert request.caller == "+79161234567"
    assert request.did == "74951234568"
    assert request.args == ("+79161234567", "74951234568")


def test_replies() -> None:
    assert parse_reply("200 result=1\n").code == 200
    assert parse_reply("200 result=1").result == "1"
    assert parse_reply("510 Invalid or unknown command").code == 510
    assert parse_reply("HANGUP").code == 511


async def test_routes_the_captured_call(router: Recorder) -> None:
    server, port = await serve(router)
    try:
        command = await ask(port, captured_environment())
        await settle(server)
    finally:
        await server.stop()
    assert command == 'SET VARIABLE CALLCARD_ROUTE "102"\n'
    assert [r.caller for r in router.asked] == ["+79161234567"]
    assert server.stats.routed == 1 and server.stats.fallbacks == 0


async def test_second_ask_gets_the_routers_next_answer() -> None:
    router = Recorder(answers=["101", "103"])
    server, port = await serve(router)
    try:
        first = await ask(port, captured_environment())
        second = await ask(port, captured_environment())
    finally:
        await server.stop()
    assert first.endswith('"101"\n') and second.endswith('"103"\n')
    assert {r.call_id for r in router.asked} == {"1795386718.8"}


@pytest.mark.parametrize(
    ("router", "why"),
    [
        (Recorder(answers=[None]), "nobody on duty"),
        (Recorder(delay=2.0), "router too slow"),
        (Recorder(answers=["101\nHANGUP"]), "unsafe answer"),
    ],
)
async def test_falls_back(router: Recorder, why: str) -> None:
    server, port = await serve(router, decide_within=0.2)
    try:
        command = await ask(port, captured_environment())
    finally:
        await server.stop()
    assert command == 'SET VARIABLE CALLCARD_ROUTE "queue:sales"\n', why
    assert server.stats.fallbacks == 1


async def test_router_error_falls_back() -> None:
    async def broken(_request: AgiRequest) -> str | None:
        raise RuntimeError("database is down")

    server = FastAgiServer(broken, fallback="queue:sales")
    port = await server.start("127.0.0.1", 0)
    try:
        command = await ask(port, captured_environment())
    finally:
        await server.stop()
    assert command.endswith('"queue:sales"\n')


async def test_probes_garbage_and_hangups_leave_it_serving(router: Recorder) -> None:
    server, port = await serve(router, io_timeout=0.5)
    try:
        for _ in range(20):  # health probes: connect and close
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not FastAGI at all
        await writer.drain()
        writer.close()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(captured_environment()[:200])  # cut mid-environment
        writer.close()
        # The caller hangs up while we answer: Asterisk sends HANGUP or just closes.
        assert (await ask(port, captured_environment(), reply=b"HANGUP\n")).endswith('"102"\n')
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(captured_environment())
        await reader.readline()
        writer.close()
        await settle(server)
        answered = await ask(port, captured_environment())
        await settle(server)
    finally:
        await server.stop()
    assert answered.endswith('"102"\n')
    assert server.stats.probes == 22
    assert server.stats.hangups == 2
    assert server.stats.routed == 3


async def test_unknown_script_gets_no_answer(router: Recorder) -> None:
    server, port = await serve(router)
    env = captured_environment().replace(b"agi_network_script: route", b"agi_network_script: x")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(env)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await server.stop()
    assert router.asked == []
