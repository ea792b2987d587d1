"""The real servers the tests talk to. Under CI=true a missing peer fails the test
instead of skipping it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import socket
import tempfile
import threading
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
# A port handed out is locked (an fcntl record lock on its byte of this file) by the
# process it was handed to, until that process ends however it ends: no other test
# process on the machine (the other xdist worker, another run) is handed it meanwhile.
RESERVATIONS = Path(tempfile.gettempdir()) / "callcard-test-ports.lock"
_reservations: int | None = None  # never closed: closing it would drop every lock
_handed_out: set[int] = set()  # a process's own locks do not exclude it: this does
_guard = threading.Lock()


def _reservations_fd() -> int:
    global _reservations
    if _reservations is None:
        try:  # without O_CREAT: /tmp's protected_regular refuses it on another user's file
            _reservations = os.open(RESERVATIONS, os.O_RDWR)
        except FileNotFoundError:
            _reservations = os.open(RESERVATIONS, os.O_RDWR | os.O_CREAT, 0o666)
            with contextlib.suppress(OSError):  # the umask's doing: every user's runs share it
                os.fchmod(_reservations, 0o666)
    return _reservations


def _reserve(port: int, count: int) -> bool:
    try:
        fcntl.lockf(_reservations_fd(), fcntl.LOCK_EX | fcntl.LOCK_NB, count, port)
    except OSError:
        return False
    return True


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(count: int = 1) -> int:
    """A loopback port free for TCP and UDP (and the next `count - 1` ports too: a SIP
    bridge's workers, SIPp's RTP ports), reserved for this process until it ends.

    The ports are below the kernel's ephemeral range: a port from bind(0) is in it, and
    between its release and the server's bind an outgoing connection or socket (to
    PostgreSQL, Redis, a resolver...) may take it as its local port, and the server fails
    with EADDRINUSE (SIPp exits with 254). Ports below the range are never given out by
    the kernel, and the reservation keeps the other test processes off them."""
    rng = random.SystemRandom()
    with _guard:
        for _ in range(500):
            port = rng.randrange(10000, _EPHEMERAL_LOW - count + 1)
            ports = range(port, port + count)
            if _handed_out.intersection(ports) or not _reserve(port, count):
                continue
            if all(_bindable(p) for p in ports):
                _handed_out.update(ports)
                return port
            fcntl.lockf(_reservations_fd(), fcntl.LOCK_UN, count, port)
    raise RuntimeError(f"no {count} free loopback port(s) below {_EPHEMERAL_LOW}")
