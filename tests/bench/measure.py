"""Percentiles as every benchmark prints them, each with the load average beside it, and
the end of a phase: the API has handled every call event."""

from __future__ import annotations

import asyncio
import statistics

import redis.asyncio as aioredis
from bench.load import loadavg
from support.call_events import call_event_groups

from crm_api.platform.settings import Settings


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


async def call_events_handled(redis_url: str) -> None:
    """Waits until every consumer group of the call-event stream has read and acknowledged
    every entry: the API has nothing of this phase left to do."""
    redis = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(1200):
            groups = await call_event_groups(redis, Settings().call_partitions)
            if groups and all(not g["pending"] and not g.get("lag") for g in groups):
                return
            await asyncio.sleep(0.1)
        print("the API still had call events to handle 120 s after the phase")
    finally:
        await redis.aclose()
