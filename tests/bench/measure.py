"""Percentiles as every benchmark prints them, each with the load average beside it."""

from __future__ import annotations

import statistics

from bench.load import loadavg


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(int(len(ordered) * q) - 1, 0)]


def report(name: str, samples: list[float], target_ms: float) -> None:
    """Prints p50/p99 of `samples` (seconds) in milliseconds against the target p99."""
    p50 = statistics.median(samples) * 1000
    p99 = percentile(samples, 0.99) * 1000
    mark = "ok" if p99 <= target_ms else "OVER TARGET"
    print(
        f"{name:<34} n={len(samples):<6} p50={p50:7.2f} ms  p99={p99:7.2f} ms  "
        f"(target p99 ≤ {target_ms:g} ms: {mark})  {loadavg()}"
    )
