"""The real servers the tests talk to. Under CI=true a missing peer fails the test
instead of skipping it."""

from __future__ import annotations

import os
import random
import shutil
import socket
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(peer: str, why: str) -> None:
    """A peer the test needs is not there: fail under CI, skip on a developer machine."""
    message = f"{peer} is not available: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true requires it)", pytrace=False)
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_binary(name: str, path: str | None = None) -> str:
    found = path if path and os.path.exists(path) else shutil.which(name)
    if not found:
        missing(name, "not installed (make test installs it)")
    assert found is not None
    return found


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A loopback port free for TCP and UDP, below the kernel's ephemeral range.

    A port from bind(0) is in that range, so between its release and the server's bind an
    outgoing connection (to PostgreSQL, Redis…) may take it as its local port and the
    server fails with EADDRINUSE. Ports below the range are never given to connections;
    a port is handed out once per process."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10000, _EPHEMERAL_LOW)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port below {_EPHEMERAL_LOW}")
