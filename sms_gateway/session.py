"""The SMPP session as a pure state machine: typed PDUs and the time go in; the PDUs to
write and what became of each request come out. No socket, thread or clock of its own,
so each rule is unit-tested in microseconds:

- window: at most `window` submit_sm unanswered;
- rate: one submit_sm per slot once a rate applies: `max_rate`, or one learnt from
  ESME_RTHROTTLED (AIMD: halved on a throttle, grown back by `rate_step` per second),
  so a throttling SMSC gets the rate it takes instead of the whole window again;
- throttle: a throttled part goes again first, after a pause that doubles while the SMSC
  refuses everything;
- deadlines: a part still unwritten at its deadline goes back as NOT_SENT (the sender's
  claim on it must not run out while it waits here);
- watchdog: enquire_link after `enquire_link_every` of silence; no answer within
  `dead_link_after`, or a request unanswered for `response_timeout`: close the link;
- dispatch: responses matched to requests by sequence number, deliver_sm handed up,
  enquire_link and unbind answered, unknown requests refused with generic_nack."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sms_gateway import status as st
from sms_gateway.config import SmppConfig
from sms_gateway.encoding import Part

MAX_SEQUENCE = 0x7FFFFFFF
_EXPIRY_EVERY = 0.25  # how often the queue is scanned for parts past their deadline


@dataclass(slots=True, eq=False)
class Submit:
    """One part to submit; `done(status, message_id)` is called once with its fate."""

    destination: str
    part: Part
    source: str
    done: Callable[[int, str | None], None]
    registered_delivery: int = 1
    deadline: float | None = None  # monotonic: still unwritten by then → NOT_SENT


@dataclass(slots=True, eq=False)
class Query:
    """A query_sm for a message the SMSC took; `done(status, message_state)`."""

    message_id: str
    source: str
    done: Callable[[int, int | None], None]


# -- PDUs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deliver:
    """A deliver_sm from the SMSC, to be answered once handled."""

    source: str
    destination: str
    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]
    sequence: int
    generation: int


@dataclass(frozen=True, slots=True)
class SubmitSm:
    sequence: int
    submit: Submit


@dataclass(frozen=True, slots=True)
class SubmitSmResp:
    sequence: int
    status: int
    message_id: str | None


@dataclass(frozen=True, slots=True)
class QuerySm:
    sequence: int
    query: Query


@dataclass(frozen=True, slots=True)
class QuerySmResp:
    sequence: int
    status: int
    message_state: int | None


@dataclass(frozen=True, slots=True)
class DeliverSmResp:
    sequence: int
    status: int


@dataclass(frozen=True, slots=True)
class GenericNack:
    sequence: int
    status: int


@dataclass(frozen=True, slots=True)
class EnquireLink:
    sequence: int


@dataclass(frozen=True, slots=True)
class EnquireLinkResp:
    sequence: int


@dataclass(frozen=True, slots=True)
class Unbind:
    sequence: int


@dataclass(frozen=True, slots=True)
class UnbindResp:
    sequence: int


@dataclass(frozen=True, slots=True)
class BindTransceiver:
    sequence: int
    system_id: str
    password: str
    system_type: str


@dataclass(frozen=True, slots=True)
class BindResp:
    sequence: int
    status: int


@dataclass(frozen=True, slots=True)
class OtherPdu:
    """A PDU this session has no use for."""

    sequence: int
    command_id: int

    @property
    def is_request(self) -> bool:
        return not self.command_id & 0x80000000


Inbound = (
    SubmitSmResp
    | QuerySmResp
    | GenericNack
    | Deliver
    | EnquireLink
    | EnquireLinkResp
    | Unbind
    | UnbindResp
    | BindResp
    | OtherPdu
)
Outbound = (
    SubmitSm
    | QuerySm
    | DeliverSmResp
    | GenericNack
    | EnquireLink
    | EnquireLinkResp
    | Unbind
    | UnbindResp
    | BindTransceiver
)

# -- outcomes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitDone:
    submit: Submit
    status: int  # command_status, or st.LINK_LOST / st.NOT_SENT
    message_id: str | None


@dataclass(frozen=True, slots=True)
class QueryDone:
    query: Query
    status: int
    message_state: int | None


@dataclass(frozen=True, slots=True)
class Received:
    deliver: Deliver


@dataclass(frozen=True, slots=True)
class Close:
    reason: str


Action = Outbound | SubmitDone | QueryDone | Received | Close


class Session:
    """One bound session. `tick()` whenever `wakeup()` says or new work came; `feed()`
    every PDU read; `close()` when the link is gone."""

    def __init__(
        self,
        config: SmppConfig,
        now: float,
        generation: int = 0,
        learnt_rate: float | None = None,  # a rate the SMSC's throttling taught before
    ) -> None:
        self.config = config
        self.generation = generation
        self.rate: float | None = learnt_rate or config.max_rate or None  # submit_sm/s
        self.throttled = 0  # ESME_RTHROTTLED answers seen
        self._sequence = 0
        self._waiting: deque[Submit] = deque()
        self._retry: deque[Submit] = deque()  # throttled parts: they go first
        self._queries: deque[Query] = deque()
        self._pending: dict[int, tuple[float, Submit | Query]] = {}  # sequence → sent at
        self._submits = 0  # submit_sm among _pending
        self._last_rx = now
        self._probe: float | None = None  # when the unanswered enquire_link went
        self._next_slot = now
        self._paused_until = now
        self._pause = config.throttle_pause
        self._cut_at = now if learnt_rate else -math.inf  # when the rate was last cut
        self._recent: deque[float] = deque()  # submit_sm times within the last second
        self._next_expiry = now

    # -- work from the user -------------------------------------------------------------

    def submit(self, item: Submit) -> None:
        self._waiting.append(item)

    def query(self, item: Query) -> None:
        self._queries.append(item)

    def answer(self, sequence: int, status: int) -> list[Action]:
        return [DeliverSmResp(sequence, status)]

    def stop(self) -> list[Action]:
        return [Unbind(self._next_sequence())]

    @property
    def queued(self) -> int:
        return len(self._waiting) + len(self._retry)

    @property
    def in_flight(self) -> int:
        return self._submits

    # -- PDUs read ----------------------------------------------------------------------

    def feed(self, pdu: Inbound, now: float) -> list[Action]:
        self._last_rx = now
        self._probe = None
        if isinstance(pdu, SubmitSmResp | QuerySmResp | GenericNack):
            entry = self._pending.pop(pdu.sequence, None)
            if entry is None:
                return []  # an answer to nothing we asked (or a resp to our enquire_link)
            sent_at, request = entry
            if isinstance(request, Query):
                state = pdu.message_state if isinstance(pdu, QuerySmResp) else None
                return [QueryDone(request, pdu.status, state)]
            self._submits -= 1
            message_id = pdu.message_id if isinstance(pdu, SubmitSmResp) else None
            return self._submitted(request, sent_at, pdu.status, message_id, now)
        if isinstance(pdu, Deliver):
            return [Received(pdu)]
        if isinstance(pdu, EnquireLink):
            return [EnquireLinkResp(pdu.sequence)]
        if isinstance(pdu, Unbind):
            return [UnbindResp(pdu.sequence), Close("the SMSC unbound")]
        if isinstance(pdu, OtherPdu) and pdu.is_request:
            return [GenericNack(pdu.sequence, st.ESME_RINVCMDID)]
        return []

    def _submitted(
        self, item: Submit, sent_at: float, status: int, message_id: str | None, now: float
    ) -> list[Action]:
        if status == st.ESME_RTHROTTLED:
            self.throttled += 1
            self._retry.append(item)
            if sent_at >= self._cut_at:  # sent at the current rate: it is too high
                self._cut(now)
            return []
        self._pause = self.config.throttle_pause
        if self.rate is not None and self._cut_at > -math.inf:
            self.rate += self.config.rate_step / self.rate
            if self.config.max_rate:
                self.rate = min(self.rate, self.config.max_rate)
        return [SubmitDone(item, status, message_id if status == st.ESME_ROK else None)]

    def _cut(self, now: float) -> None:
        """Multiplicative decrease, from the rate really sent (the window may have set
        it, not the slot) and a pause before the next submit_sm."""
        self._trim_recent(now)
        sent = float(max(len(self._recent), 1))
        current = min(self.rate, sent) if self.rate is not None else sent
        self.rate = max(self.config.min_rate, current / 2)
        self._cut_at = now
        self._paused_until = now + self._pause
        self._next_slot = self._paused_until
        self._pause = min(self._pause * 2, 8.0)

    # -- the clock ----------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        cfg = self.config
        if self._probe is not None and now - self._probe > cfg.dead_link_after:
            return [Close("enquire_link not answered")]
        if self._pending:
            oldest, _ = next(iter(self._pending.values()))
            if now - oldest > cfg.response_timeout:
                return [Close(f"a request unanswered for {cfg.response_timeout:g}s")]
        out: list[Action] = []
        if now >= self._next_expiry:
            self._next_expiry = now + _EXPIRY_EVERY
            out += self._expire(now)
        while self._queries:
            query = self._queries.popleft()
            sequence = self._next_sequence()
            self._pending[sequence] = (now, query)
            out.append(QuerySm(sequence, query))
        while (self._retry or self._waiting) and self._submits < cfg.window:
            if now < self._paused_until:
                break
            if self.rate is not None:
                if now < self._next_slot:
                    break
                # A late tick may catch up a little, never burst a whole second's worth.
                self._next_slot = max(self._next_slot, now - 0.1) + 1.0 / self.rate
            item = self._retry.popleft() if self._retry else self._waiting.popleft()
            sequence = self._next_sequence()
            self._pending[sequence] = (now, item)
            self._submits += 1
            self._recent.append(now)
            out.append(SubmitSm(sequence, item))
        self._trim_recent(now)
        if self._probe is None and now - self._last_rx > cfg.enquire_link_every:
            self._probe = now
            out.append(EnquireLink(self._next_sequence()))
        return out

    def wakeup(self, now: float) -> float:
        """Seconds until `tick()` has something to do (at most half a second)."""
        cfg = self.config
        times = [now + 0.5]
        if self._queries:
            times.append(now)
        if (self._retry or self._waiting) and self._submits < cfg.window:
            times.append(max(self._paused_until, self._next_slot if self.rate else now))
        if self._probe is not None:
            times.append(self._probe + cfg.dead_link_after)
        else:
            times.append(self._last_rx + cfg.enquire_link_every)
        if self._pending:
            oldest, _ = next(iter(self._pending.values()))
            times.append(oldest + cfg.response_timeout)
        return max(0.0, min(times) - now)

    def close(self) -> list[Action]:
        """The link is gone: parts written and unanswered are LINK_LOST (the SMSC may
        have them), the rest NOT_SENT (it cannot)."""
        out: list[Action] = []
        for _, request in self._pending.values():
            if isinstance(request, Submit):
                out.append(SubmitDone(request, st.LINK_LOST, None))
            else:
                out.append(QueryDone(request, st.LINK_LOST, None))
        out += [QueryDone(q, st.NOT_SENT, None) for q in self._queries]
        out += [SubmitDone(s, st.NOT_SENT, None) for s in (*self._retry, *self._waiting)]
        self._pending.clear()
        self._queries.clear()
        self._retry.clear()
        self._waiting.clear()
        self._submits = 0
        return out

    # -- helpers ------------------------------------------------------------------------

    def _expire(self, now: float) -> list[Action]:
        out: list[Action] = []
        for queue in (self._retry, self._waiting):
            late = [s for s in queue if s.deadline is not None and s.deadline <= now]
            if late:
                keep = [s for s in queue if s.deadline is None or s.deadline > now]
                queue.clear()
                queue.extend(keep)
                out += [SubmitDone(s, st.NOT_SENT, None) for s in late]
        return out

    def _trim_recent(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % MAX_SEQUENCE + 1
        return self._sequence
