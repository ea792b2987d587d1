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

from support.children import dies_with_us

# On by default: published figures must hold beside ordinary background load.
HOG = os.environ.get("BENCH_HOG", "1") != "0"
_TICK = os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (/proc/<pid>/stat utime + stime)."""
    # The command name (field 2) may hold spaces; the fields after it are positional.
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK


def _stat(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of `pid` and of its children alive now (PostgreSQL's backends)."""
    total = cpu_seconds(pid)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(entry.name)
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


class CpuBudget:
    """Where a machine's CPU per operation goes: each named process (with its children),
    measured over the same interval, and their sum against one core at a rate."""

    def __init__(self, parts: dict[str, int], trees: frozenset[str] = frozenset()) -> None:
        """`parts`: name → pid; the parts named in `trees` count their children too."""
        self.parts = {name: pid for name, pid in parts.items() if os.path.exists(f"/proc/{pid}")}
        self.trees = trees
        self._since: dict[str, float] = {}

    def _cpu(self, name: str) -> float:
        pid = self.parts[name]
        return tree_cpu_seconds(pid) if name in self.trees else cpu_seconds(pid)

    def start(self) -> None:
        self._since = {name: self._cpu(name) for name in self.parts}

    def report(self, operations: int, rate: float) -> None:
        spent = {name: self._cpu(name) - self._since[name] for name in self.parts}
        per = {n: s * 1000 / operations for n, s in spent.items()}
        total = sum(per.values())
        parts = " + ".join(f"{n} {ms:.2f}" for n, ms in per.items())
        print(
            f"CPU ms per call: {parts} = {total:.2f}; at {rate:g} calls/s"
            f" {total * rate / 10:.0f}% of one core  {loadavg()}"
        )


# Busy until it is stopped; it dies with the benchmark's process (dies_with_us): one killed
# without its cleanup must not leave a core taken from every figure measured after it.
_HOG = "while True: pass"


@contextlib.contextmanager
def cpu_hog() -> Iterator[None]:
    """A process busy on one core for the whole block, when BENCH_HOG is not 0."""
    if not HOG:
        print(f"\nno background CPU hog (BENCH_HOG=0); {loadavg()}")
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", _HOG], preexec_fn=dies_with_us())
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
