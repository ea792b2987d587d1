"""The loopback ports the tests hand to their servers and SIPp: never the same one to two
test processes at once, never one the kernel may give an outgoing socket meanwhile; and a
port taken all the same (by a program that is not a test) fails its SIPp clearly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import support.sipp
from support import peers
from support.sipp import start_sipp

TESTS = Path(__file__).resolve().parents[2]

# A process of the suite: takes ports of every width SIPp and the bridges take, reports
# them, and holds them (as a running test does) until its stdin closes.
_TAKER = """
import json, sys
from support.peers import free_port
ports = []
for i in range(600):
    count = 1 + i % 4
    first = free_port(count)
    ports += range(first, first + count)
print(json.dumps(ports), flush=True)
sys.stdin.read()
"""


def test_processes_taking_ports_at_once_are_never_handed_the_same_one() -> None:
    # 4 x 1500 ports of the ~22,000 below the ephemeral range: drawn independently (as
    # before the reservation), hundreds would be handed out twice.
    takers = [
        subprocess.Popen(
            [sys.executable, "-c", _TAKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=TESTS,
            env={"PYTHONPATH": str(TESTS), "PATH": "/usr/bin:/bin"},
        )
        for _ in range(4)
    ]
    try:
        taken = [json.loads(taker.stdout.readline()) for taker in takers]  # type: ignore[union-attr]
    finally:
        for taker in takers:
            taker.stdin.close()  # type: ignore[union-attr]
            taker.wait(30)
    counts = Counter(port for ports in taken for port in ports)
    assert sum(counts.values()) == 4 * 1500
    assert [port for port, n in counts.items() if n > 1] == []
    assert max(counts) < peers._EPHEMERAL_LOW  # no outgoing socket is given one meanwhile


def test_a_port_is_handed_out_once_in_a_process() -> None:
    first = peers.free_port(4)
    assert all(peers.free_port() not in range(first, first + 4) for _ in range(2000))


@pytest.mark.sipp
async def test_sipp_on_a_port_something_else_took_fails_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", peers.free_port()))
        taken = squatter.getsockname()[1]
        ports = iter([taken, peers.free_port(4)])
        monkeypatch.setattr(support.sipp, "free_port", lambda count=1: next(ports))
        phone = await start_sipp("phone.xml", tmp_path)
        with pytest.raises(AssertionError) as failed:
            await phone.listening()
    assert f"{taken} was not bound (exit 254)" in str(failed.value)
    assert "Unable to bind main socket, errno = 98 (Address already in use)" in str(failed.value)
