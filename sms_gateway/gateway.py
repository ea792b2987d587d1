"""The asyncio face of the SMPP adapter: `send()` a message, take `batch()`es of what the
SMSC delivered (receipts and received messages) and acknowledge them once they are safe.
A deliver_sm is answered only when the user acknowledges it, so a crash before the
database commit makes the SMSC deliver it again instead of losing it (for a long
received message, its last part).

A received message the SMSC gives no id is known by its session and sequence number.
When the session dies, the messages whose answer may not have reached the SMSC (not yet
answered, or answered while the link may already have been dead) are in doubt: the
next one with the same sender, recipient and text is taken as the SMSC delivering it
again and keeps its reference, once per message in doubt (two equal replies sent
apart are still two)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sms_gateway import status as st
from sms_gateway.config import SmppConfig
from sms_gateway.connection import SmppConnection
from sms_gateway.encoding import decode_text, make_parts
from sms_gateway.receipts import TLV_RECEIPTED_MESSAGE_ID, is_receipt, parse_receipt
from sms_gateway.session import Deliver, Query, Submit
from sms_gateway.status import LINK_LOST, NOT_SENT
from sms_gateway.types import DeliveryReceipt, InboundSms, OutgoingSms, PartResult, SendResult
from sms_gateway.udh import Key, Reassembler, key_of, split_udh

log = logging.getLogger(__name__)
IN_DOUBT_FOR = 600.0  # seconds a message in doubt waits to be delivered again

_Content = tuple[str, str, str]  # (source, destination, text) of a received message


@dataclass(frozen=True, slots=True)
class Incoming:
    item: DeliveryReceipt | InboundSms
    delivers: tuple[Deliver, ...]


class SmsGateway:
    def __init__(self, config: SmppConfig, *, reassembly_timeout: float = 300.0) -> None:
        self.config = config
        self._conn: SmppConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._incoming: asyncio.Queue[Incoming] = asyncio.Queue()
        self._reassembler = Reassembler(reassembly_timeout)
        self._held: dict[Key, list[Deliver]] = {}
        # Received messages without an SMSC id: this session's (reference → content and
        # when it was answered), and those of dead sessions in doubt (content → their
        # references, with when they came into doubt).
        self._received: dict[str, tuple[_Content, float | None]] = {}
        self._in_doubt: dict[_Content, deque[tuple[str, float]]] = {}
        self._bound = asyncio.Event()
        self._handover: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._handover_lock = threading.Lock()
        self._handover_scheduled = False
        self.state_listeners: list[Callable[[bool, str | None], None]] = []

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._conn = SmppConnection(self.config, self._deliver_from_thread, self._state_from_thread)
        self._conn.start()

    async def stop(self) -> None:
        if self._conn is not None:
            await asyncio.to_thread(self._conn.stop)

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.bound

    @property
    def last_error(self) -> str | None:
        return self._conn.last_error if self._conn else None

    @property
    def rate(self) -> float | None:
        """submit_sm per second the current session keeps to (learnt from throttling or
        configured); None while only the window limits it."""
        session = self._conn.session if self._conn else None
        return session.rate if session is not None else None

    @property
    def throttled(self) -> int:
        """ESME_RTHROTTLED answers in the current session."""
        session = self._conn.session if self._conn else None
        return session.throttled if session is not None else 0

    @property
    def bind_attempts(self) -> int:
        return self._conn.bind_attempts if self._conn else 0

    @property
    def in_flight(self) -> int:
        """submit_sm sent and not answered yet (read from the IO thread's session)."""
        session = self._conn.session if self._conn else None
        return session.in_flight if session else 0

    @property
    def queued(self) -> int:
        """Parts waiting for a window slot."""
        session = self._conn.session if self._conn else None
        return session.queued if session else 0

    async def wait_bound(self, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bound.wait(), within)
        return self.connected

    # -- sending ------------------------------------------------------------------------

    async def send(
        self, message: OutgoingSms, *, skip: Iterable[int] = (), within: float | None = None
    ) -> SendResult:
        """Submits every part not in `skip` (parts an earlier attempt already placed) and
        waits for the SMSC's answers. A part still unwritten after `within` seconds (the
        SMSC throttling, a long queue) comes back not sent, so the caller's hold on the
        message never outlives this call. Never raises for SMSC conditions: see
        SendResult."""
        conn = self._conn
        if conn is None or not conn.bound:
            return SendResult("retry", error=self.last_error or "not bound to the SMSC")
        try:
            parts = make_parts(message.text, message.reference)
        except ValueError as e:
            return SendResult("failed", error=str(e))
        loop = asyncio.get_running_loop()
        skipped = set(skip)
        deadline = None if within is None else time.monotonic() + within
        futures: list[tuple[int, asyncio.Future[tuple[int, str | None]]]] = []
        for index, part in enumerate(parts):
            if index in skipped:
                continue
            fut: asyncio.Future[tuple[int, str | None]] = loop.create_future()

            def done(
                code: int, mid: str | None, fut: asyncio.Future[tuple[int, str | None]] = fut
            ) -> None:
                self._to_loop(_resolve, fut, (code, mid))

            conn.submit(
                Submit(
                    destination=message.destination.lstrip("+"),
                    part=part,
                    source=message.source or self.config.source_addr,
                    done=done,
                    deadline=deadline,
                )
            )
            futures.append((index, fut))
        results = []
        for index, fut in futures:
            code, mid = await fut
            results.append(PartResult(index, mid, code))
        return summarize(results)

    async def query(self, message_id: str, source: str = "") -> tuple[int, int | None]:
        """query_sm: (command_status, message_state) of a message the SMSC took; a
        pseudo status (NOT_SENT, LINK_LOST) when the link could not ask."""
        conn = self._conn
        if conn is None or not conn.bound:
            return NOT_SENT, None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[int, int | None]] = loop.create_future()

        def done(code: int, state: int | None) -> None:
            self._to_loop(_resolve, fut, (code, state))

        conn.query(Query(message_id, source or self.config.source_addr, done))
        return await fut

    # -- receiving ----------------------------------------------------------------------

    async def batch(self, max_items: int = 200, wait: float = 1.0) -> list[Incoming]:
        """What arrived, at most `max_items`, waiting up to `wait` seconds for the first."""
        self._release_expired()
        try:
            first = await asyncio.wait_for(self._incoming.get(), wait)
        except TimeoutError:
            return []
        items = [first]
        while len(items) < max_items and not self._incoming.empty():
            items.append(self._incoming.get_nowait())
        return items

    def ack(self, incoming: Incoming, ok: bool = True) -> None:
        """Answers the SMSC: ok once the item is stored; not ok asks it to redeliver."""
        if self._conn is None:
            return
        code = st.ESME_ROK if ok else st.ESME_RX_T_APPN
        for deliver in incoming.delivers:
            self._conn.answer(deliver, code)
        item = incoming.item
        if ok and isinstance(item, InboundSms) and item.ref in self._received:
            self._received[item.ref] = (self._received[item.ref][0], time.monotonic())

    # -- from the IO thread -------------------------------------------------------------

    def _deliver_from_thread(self, deliver: Deliver) -> None:
        self._to_loop(self._on_deliver, deliver)

    def _state_from_thread(self, bound: bool, error: str | None) -> None:
        self._to_loop(self._on_state, bound, error)

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Runs fn(*args) in the event loop, in call order. Calls made while the loop has
        not yet run the previous ones join them: one wake-up of the loop carries a whole
        read's worth of results (a wake-up per message costs more than the message)."""
        with self._handover_lock:
            self._handover.append((fn, args))
            if self._handover_scheduled:
                return
            self._handover_scheduled = True
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._run_handover)

    def _run_handover(self) -> None:
        with self._handover_lock:
            calls, self._handover = self._handover, []
            self._handover_scheduled = False
        for fn, args in calls:
            fn(*args)

    def _on_state(self, bound: bool, error: str | None) -> None:
        if bound:
            self._bound.set()
        else:
            self._bound.clear()
            # Held parts of a long MO message belong to a dead session: the SMSC will
            # deliver them again, so start over.
            self._held.clear()
            self._reassembler = Reassembler(self._reassembler.timeout)
            self._doubt_received()
        for listener in self.state_listeners:
            listener(bound, error)

    def _on_deliver(self, deliver: Deliver) -> None:
        if is_receipt(deliver.esm_class):
            receipt = parse_receipt(deliver.short_message, deliver.tlvs)
            if receipt is None:
                log.warning("a delivery receipt without a message id: %r", deliver)
                self._answer(deliver)
                return
            receipt = dataclasses.replace(receipt, handset=deliver.source)
            self._incoming.put_nowait(Incoming(receipt, (deliver,)))
            return
        ref = self._ref_of(deliver)
        payload = deliver.short_message
        concat = None
        if deliver.esm_class & 0x40:
            concat, payload = split_udh(payload)
        text = decode_text(payload, deliver.data_coding)
        if concat is None or concat.total <= 1:
            ref = self._known_ref(ref, (deliver.source, deliver.destination, text))
            self._incoming.put_nowait(
                Incoming(InboundSms(deliver.source, deliver.destination, text, ref), (deliver,))
            )
            return
        key = key_of(deliver.source, concat)
        whole = self._reassembler.add(deliver.source, concat, text)
        if whole is None:
            # Many SMSCs send the next part only after this one is answered, so a part
            # is answered at once; the part that completes the message is answered
            # after the commit. (A crash between loses the earlier parts: they live in
            # memory only.)
            self._held.setdefault(key, []).append(deliver)
            self._answer(deliver)
            return
        self._held.pop(key, None)
        ref = self._known_ref(ref, (deliver.source, deliver.destination, whole))
        self._incoming.put_nowait(
            Incoming(InboundSms(deliver.source, deliver.destination, whole, ref), (deliver,))
        )

    def _release_expired(self) -> None:
        for key, text in self._reassembler.expired():
            delivers = self._held.pop(key, [])
            if delivers:
                sms = InboundSms(key[0], delivers[0].destination, text, self._ref_of(delivers[-1]))
                self._incoming.put_nowait(Incoming(sms, ()))  # its parts were answered

    def _ref_of(self, deliver: Deliver) -> str:
        """What the SMSC identifies a received message by, never its content (two equal
        replies are two messages): its message id when it gives one, else the session
        (unique to this process and bind) and the deliver_sm's sequence number, which an
        SMSC repeats when it delivers the same PDU again on that session."""
        mid = deliver.tlvs.get(TLV_RECEIPTED_MESSAGE_ID, b"").rstrip(b"\0")
        if mid:
            return "id:" + mid.decode("ascii", "replace")
        assert self._conn is not None
        return f"seq:{self._conn.instance}.{deliver.generation}:{deliver.sequence}"

    def _known_ref(self, ref: str, content: _Content) -> str:
        """The reference of a received message: for one without an SMSC id that matches
        a message in doubt, that message's (the SMSC delivering it again)."""
        if not ref.startswith("seq:"):
            return ref
        now = time.monotonic()
        doubts = self._in_doubt.get(content)
        while doubts:
            earlier, since = doubts.popleft()
            if now - since < IN_DOUBT_FOR:
                ref = earlier
                break
        if doubts is not None and not doubts:
            del self._in_doubt[content]
        if len(self._received) >= 1000:  # answered long enough ago to be safe: forgotten
            safe = now - self.config.enquire_link_every - self.config.dead_link_after
            self._received = {
                r: (c, at) for r, (c, at) in self._received.items() if at is None or at > safe
            }
        self._received[ref] = (content, None)
        return ref

    def _doubt_received(self) -> None:
        """The session died: its received messages whose answer may not have arrived
        come into doubt. A link is found dead after up to enquire_link_every +
        dead_link_after of silence; what was written in that time may be lost."""
        now = time.monotonic()
        lost_within = self.config.enquire_link_every + self.config.dead_link_after
        for ref, (content, answered) in self._received.items():
            if answered is None or now - answered < lost_within:
                self._in_doubt.setdefault(content, deque()).append((ref, now))
        self._received.clear()
        for content in [c for c, d in self._in_doubt.items() if now - d[-1][1] >= IN_DOUBT_FOR]:
            del self._in_doubt[content]

    def _answer(self, deliver: Deliver) -> None:
        if self._conn is not None:
            self._conn.answer(deliver, st.ESME_ROK)


T = TypeVar("T")


def _resolve(fut: asyncio.Future[T], value: T) -> None:
    if not fut.done():
        fut.set_result(value)


def summarize(results: list[PartResult]) -> SendResult:
    """One outcome for a message from its parts' answers: a part refused for good fails
    the message; a part not placed (link lost, SMSC busy) makes it retry with the placed
    parts remembered."""
    parts = tuple(results)
    final = [
        r
        for r in results
        if r.status not in (0, LINK_LOST, NOT_SENT) and not st.is_retryable(r.status)
    ]
    if final:
        return SendResult("failed", parts, f"SMSC refused: {st.name(final[0].status)}")
    pending = [r for r in results if r.status != 0]
    if pending:
        code = pending[0].status
        reason = {
            LINK_LOST: "SMSC link lost before it answered",
            NOT_SENT: "not bound to the SMSC",
        }.get(code) or f"SMSC busy: {st.name(code)}"
        return SendResult("retry", parts, reason)
    return SendResult("submitted", parts)
