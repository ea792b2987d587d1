"""Prometheus metrics of one Callcard process, with the official `prometheus_client`.

Per process, not prometheus_client's multiprocess mode: every `callcard api` worker is its
own process on its own port behind nginx, so Prometheus scrapes each worker as a target of
its own and sums over them (deploy/prometheus.yml); `callcard telephony` and `callcard sms`
serve the same text on CALLCARD_METRICS_BIND. One registry per Services, not the global
one, so that several apps in one test process count apart. A family is registered by the
feature that feeds it: an API worker shows no AMI link, a telephony process no sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from crm_api.platform.realtime.frames import Frame
from crm_api.platform.settings import host_port

log = logging.getLogger(__name__)
CONTENT_TYPE = CONTENT_TYPE_LATEST
HTTP_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POP_BUCKETS = (0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REFRESH_WITHIN_S = 2.0  # a scrape never waits on a stuck Redis longer than this
RINGS_REMEMBERED = 10_000  # rings read but not popped yet, at most

Refresher = Callable[[], Awaitable[None]]


class CallMetrics:
    """The call-event pipeline of an API worker."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "callcard_call_events_handled",
            "Call events this worker wrote, by type",
            ("type",),
            registry=registry,
        )
        self.screen_pop = Histogram(
            "callcard_screen_pop_seconds",
            "From the telephony process appending a ring to the call stream to the pop"
            " published on the bus",
            buckets=POP_BUCKETS,
            registry=registry,
        )
        self.stream_lag = Gauge(
            "callcard_stream_lag_entries",
            "Entries of an event stream a consumer group of this worker has not read yet",
            ("stream", "group"),
            registry=registry,
        )
        self.stream_pending = Gauge(
            "callcard_stream_pending_entries",
            "Entries of an event stream read by this worker but not yet acknowledged",
            ("stream", "group"),
            registry=registry,
        )
        self.partitions = Gauge(
            "callcard_call_partitions_owned",
            "Partitions of the call-event stream this worker handles",
            registry=registry,
        )
        # (pbx, call id, agent) → when the ring was appended (the sender's clock, epoch
        # seconds); two PBXs may give their calls one id
        self._rings: OrderedDict[tuple[str, str, str], float] = OrderedDict()

    def ring_read(self, pbx: str, call_id: str, agent: str, sent_at: float) -> None:
        self._rings[(pbx, call_id, agent)] = sent_at
        while len(self._rings) > RINGS_REMEMBERED:
            self._rings.popitem(last=False)

    def popped(self, pbx: str, call_id: str, agent: str) -> None:
        sent_at = self._rings.pop((pbx, call_id, agent), None)
        if sent_at is not None:
            # Two hosts' clocks: a pop cannot come before its ring.
            self.screen_pop.observe(max(time.time() - sent_at, 0.0))


class TelephonyMetrics:
    """The PBX link of `callcard telephony` (or of the embedded process)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ami_up = Gauge(
            "callcard_ami_up", "1 while the AMI link is logged in", registry=registry
        )
        self.calls_in_progress = Gauge(
            "callcard_calls_in_progress",
            "Live calls on the PBX as the active telephony process tracks them",
            registry=registry,
        )
        self.active = Gauge(
            "callcard_telephony_active",
            "1 while this telephony process holds its PBX's lease (the other one stands by)",
            registry=registry,
        )
        self.takeovers = Counter(
            "callcard_telephony_takeovers",
            "Times this process became the active one for its PBX",
            registry=registry,
        )
        self.commands = Counter(
            "callcard_pbx_commands",
            "API workers' PBX commands this process took: ok, refused by the PBX, or not_run"
            " (expired or cancelled before it read them)",
            ["kind", "outcome"],
            registry=registry,
        )


class SmsMetrics:
    """The SMPP bind of `callcard sms`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.bound = Gauge("callcard_smpp_bound", "1 while bound to the SMSC", registry=registry)
        self.window_in_use = Gauge(
            "callcard_smpp_window_in_use",
            "submit_sm sent and not answered yet",
            registry=registry,
        )
        self.window = Gauge(
            "callcard_smpp_window", "unanswered submit_sm allowed at most", registry=registry
        )
        self.queued = Gauge(
            "callcard_smpp_queued", "message parts waiting for a window slot", registry=registry
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_seconds = Histogram(
            "callcard_http_request_duration_seconds",
            "HTTP request time by route name",
            ("method", "route", "status"),
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.ws_clients = Gauge(
            "callcard_ws_clients", "Open /ws sockets on this worker", registry=self.registry
        )
        self.frames = Counter(
            "callcard_frames_published",
            "Frames this process published to the bus, by type",
            ("type",),
            registry=self.registry,
        )
        self._refreshers: list[Refresher] = []
        self._watchers: dict[str, list[Callable[[Frame], None]]] = {}

    @cached_property
    def calls(self) -> CallMetrics:
        return CallMetrics(self.registry)

    @cached_property
    def telephony(self) -> TelephonyMetrics:
        return TelephonyMetrics(self.registry)

    @cached_property
    def sms(self) -> SmsMetrics:
        return SmsMetrics(self.registry)

    def refresh_with(self, refresher: Refresher) -> None:
        """`refresher` updates gauges that need a round trip (Redis) before each scrape."""
        self._refreshers.append(refresher)

    async def render(self) -> bytes:
        """The exposition text, gauges refreshed first."""
        for refresh in self._refreshers:
            try:
                await asyncio.wait_for(refresh(), REFRESH_WITHIN_S)
            except Exception as exc:  # a scrape still answers: the stale value stays
                log.warning("metrics refresh failed: %r", exc)
        return generate_latest(self.registry)

    def watch_published(self, type_: str, seen: Callable[[Frame], None]) -> Callable[[], None]:
        """`seen` gets each frame of this type this process publishes (a feature timing
        its own frames); returns what stops it."""
        watchers = self._watchers.setdefault(type_, [])
        watchers.append(seen)
        return lambda: watchers.remove(seen)

    def frame_published(self, frame: Frame) -> None:
        self.frames.labels(frame.type).inc()
        for seen in self._watchers.get(frame.type, ()):
            seen(frame)


@contextlib.contextmanager
def serving(metrics: Metrics, bind: str | None) -> Any:
    """The exposition over HTTP for a process without the API (a thread of the client
    library). Gauges set from callbacks read plain attributes: safe from that thread."""
    if not bind:
        yield None
        return
    host, port = host_port(bind)
    server, thread = start_http_server(port, host, registry=metrics.registry)
    log.info("metrics at http://%s:%s/metrics", host, port)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
