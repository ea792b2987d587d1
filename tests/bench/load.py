"""What a benchmark figure means on a shared machine: an optional CPU hog the benchmark
starts itself (so "under load" is reproducible), the load average printed beside every
figure, and CPU time per operation of a process (which holds when wall-clock latency
does not)."""

from __future__ import annotations

import contextlib
import os
import pstats
import subprocess
import sys
from collections.abc import Iterator

# On by default: published figures must hold beside ordinary background load.
HOG = os.environ.get("BENCH_HOG", "1") != "0"
_TICK = os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (/proc/<pid>/stat utime + stime)."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name (field 2) may hold spaces; the fields after it are positional.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@contextlib.contextmanager
def cpu_hog() -> Iterator[None]:
    """A process busy on one core for the whole block, when BENCH_HOG is not 0."""
    if not HOG:
        print(f"\nno background CPU hog (BENCH_HOG=0); {loadavg()}")
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    print(f"\nbackground CPU hog running (pid {proc.pid}; BENCH_HOG=0 turns it off)")
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def report_cpu(name: str, pid: int, since: float, operations: int) -> float:
    """Prints (and returns) the CPU ms process `pid` spent per operation since
    `cpu_seconds(pid)` was `since`."""
    spent = cpu_seconds(pid) - since
    per = spent * 1000 / operations if operations else float("nan")
    print(f"{name:<34} CPU {per:6.2f} ms per op ({spent:.2f} s / {operations})  {loadavg()}")
    return per


def report_profile(path: str, top: int = 25) -> None:
    """Prints the heaviest entries of a process's cProfile statistics: by own time, then by
    time including callees."""
    stats = pstats.Stats(path)
    for order in ("tottime", "cumulative"):
        print(f"\nprofile of {path}, top {top} by {order}:")
        stats.sort_stats(order).print_stats(top)
