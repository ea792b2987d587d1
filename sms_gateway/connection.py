"""The SMPP link: one thread owns a plain TCP socket, binds as transceiver, and carries
out what the pure `Session` decides (writes, outcomes), feeding it every PDU read and the
time; it reconnects with backoff. Results go back through the callbacks the user gave
(run in this thread: they must only hand work over); nothing here knows the CRM."""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable

from sms_gateway import status as st
from sms_gateway.codec import FrameError, Frames, decode, encode
from sms_gateway.config import SmppConfig
from sms_gateway.session import (
    Action,
    BindResp,
    BindTransceiver,
    Close,
    Deliver,
    Query,
    QueryDone,
    Received,
    Session,
    Submit,
    SubmitDone,
)
from sms_gateway.status import LINK_LOST, NOT_SENT

__all__ = ["LINK_LOST", "NOT_SENT", "BindError", "SmppConfig", "SmppConnection", "Submit"]

log = logging.getLogger(__name__)


class BindError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused by the SMSC: {st.name(status)}")
        self.status = status


class LinkError(Exception):
    """The link is broken (closed, silent, garbled): reconnect."""


class SmppConnection:
    """The IO thread and its queue. `submit()`, `query()` and `answer()` may be called
    from any thread."""

    def __init__(
        self,
        config: SmppConfig,
        on_deliver: Callable[[Deliver], None],
        on_state: Callable[[bool, str | None], None],
    ) -> None:
        self.config = config
        self._on_deliver = on_deliver
        self._on_state = on_state
        self._inbox: queue.SimpleQueue[Submit | Query | tuple[int, int, int]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = threading.Event()
        self._wake_pending = False
        self._thread = threading.Thread(target=self._run, name="smpp-io", daemon=True)
        self.instance = uuid.uuid4().hex[:12]  # tells this process's sessions from others'
        self.generation = 0
        self.bound = False
        self.last_error: str | None = None
        self.binds = 0
        self.bind_attempts = 0
        self.session: Session | None = None  # the current one, for its figures

    # -- called from other threads ------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake_pending = False
        self._wake()
        self._thread.join(timeout)

    def submit(self, item: Submit) -> None:
        self._inbox.put(item)
        self._wake()

    def query(self, item: Query) -> None:
        self._inbox.put(item)
        self._wake()

    def answer(self, deliver: Deliver, status: int) -> None:
        self._inbox.put((deliver.generation, deliver.sequence, status))
        self._wake()

    def _wake(self) -> None:
        # One wake byte until the IO thread takes its work: a byte per message would
        # make each one a context switch. The IO thread clears the flag before it
        # drains the queue, so work put before this check is always seen.
        if self._wake_pending:
            return
        self._wake_pending = True
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    # -- the IO thread ------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.config.reconnect_min
        while not self._stop.is_set():
            sock = None
            try:
                sock = self._connect()
                frames = self._bind(sock)
                delay = self.config.reconnect_min
                self._session(sock, frames)
            except BindError as e:
                self.last_error = str(e)
                log.error("%s; retrying in %.1fs", e, delay)
            except (LinkError, FrameError, OSError) as e:
                self.last_error = f"SMSC link: {e or type(e).__name__}"
                log.warning("%s; reconnecting in %.1fs", self.last_error, delay)
            finally:
                self._fail_queued()
                if sock is not None:
                    sock.close()
                if self.bound:
                    self.bound = False
                    self._on_state(False, self.last_error)
                elif self.last_error:
                    self._on_state(False, self.last_error)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.config.reconnect_max)
        self._fail_queued()

    def _fail_queued(self) -> None:
        """Work handed over while no session runs goes back as NOT_SENT: the caller must
        not wait on a link that may stay down for hours."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Submit | Query):
                item.done(NOT_SENT, None)

    def _connect(self) -> socket.socket:
        cfg = self.config
        self.bind_attempts += 1
        sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _bind(self, sock: socket.socket) -> Frames:
        cfg = self.config
        sock.sendall(encode(BindTransceiver(1, cfg.system_id, cfg.password, cfg.system_type)))
        frames = Frames()
        deadline = time.monotonic() + cfg.connect_timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(4096)
            except TimeoutError as e:
                raise LinkError("bind timed out") from e
            if not data:
                raise LinkError("closed by the SMSC during the bind")
            for frame in frames.feed(data):
                pdu = decode(frame)
                if isinstance(pdu, BindResp):
                    if pdu.status != st.ESME_ROK:
                        raise BindError(pdu.status)
                    self.generation += 1
                    self.binds += 1
                    self.bound = True
                    self.last_error = None
                    self._on_state(True, None)
                    return frames

    def _session(self, sock: socket.socket, frames: Frames) -> None:
        # Writes block at most dead_link_after: an SMSC that stops reading is dead too.
        sock.settimeout(self.config.dead_link_after)
        generation = self.generation
        before = self.session
        learnt = before.rate if before is not None and before.throttled else None
        session = self.session = Session(self.config, time.monotonic(), generation, learnt)
        try:
            while not self._stop.is_set():
                answers = self._take_work(session, generation)
                self._carry_out(sock, answers + session.tick(time.monotonic()))
                readable, _, _ = select.select(
                    [sock, self._wake_r], [], [], session.wakeup(time.monotonic())
                )
                if self._wake_r in readable:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                if sock not in readable:
                    continue
                data = sock.recv(65536)
                if not data:
                    raise LinkError("closed by the SMSC")
                now = time.monotonic()
                actions: list[Action] = []
                for frame in frames.feed(data):
                    actions += session.feed(decode(frame, generation), now)
                self._carry_out(sock, actions)
            # Stopping: say goodbye politely, briefly.
            with contextlib.suppress(OSError, LinkError):
                self._carry_out(sock, session.stop())
        finally:
            self._carry_out(None, session.close())

    def _take_work(self, session: Session, generation: int) -> list[Action]:
        """New parts and queries into the session; deliver_sm answers to write."""
        answers: list[Action] = []
        self._wake_pending = False
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, Submit):
                session.submit(item)
            elif isinstance(item, Query):
                session.query(item)
            elif item[0] == generation:
                answers += session.answer(item[1], item[2])
            # an answer for a dead session is dropped: the SMSC delivers again
        return answers

    def _carry_out(self, sock: socket.socket | None, actions: list[Action]) -> None:
        """Writes the PDUs in one send and reports the outcomes."""
        out = bytearray()
        closing: Close | None = None
        for action in actions:
            if isinstance(action, SubmitDone):
                action.submit.done(action.status, action.message_id)
            elif isinstance(action, QueryDone):
                action.query.done(action.status, action.message_state)
            elif isinstance(action, Received):
                self._on_deliver(action.deliver)
            elif isinstance(action, Close):
                closing = action
            else:
                out += encode(action)
        if out and sock is not None:
            sock.sendall(out)
        if closing is not None:
            raise LinkError(closing.reason)
