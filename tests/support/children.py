"""The processes the tests start (servers, `callcard` commands, SIPp, Kamailio...) end with
the test process that started them, even when that one is killed (SIGKILL, SIGTERM, a
second Ctrl-C) and runs no cleanup: nothing of a run outlives it. Linux only.

Every start passes `preexec_fn=dies_with_us()` (subprocess and asyncio alike): the child
asks the kernel for a signal when its parent ends (prctl PR_SET_PDEATHSIG). A child that
daemonizes escapes it: start servers in the foreground (PostgreSQL as `postgres`, not
through `pg_ctl`)."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def dies_with_us(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn`: the child gets `sig` when this process ends.

    The kernel sends it when the *thread* that forked the child ends, so children are
    started from the main thread only (a worker thread of `asyncio.to_thread` ends with
    its executor, at the end of a test's loop, and would take a session's server along)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("start test processes from the main thread (see dies_with_us)")
    owner = os.getpid()

    def in_child() -> None:
        if _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != owner:  # the owner ended before the prctl: nobody would signal
            os.kill(os.getpid(), sig)

    return in_child
