"""The SMPP session on smpplib. smpplib is blocking, so one thread owns the socket: it
binds (as transceiver), writes queued PDUs while fewer than `window` submit_sm are
unanswered, reads PDUs, keeps the link alive with enquire_link and declares it dead when
the SMSC stops answering, and reconnects with backoff. Results go back to asyncio with
`call_soon_threadsafe`; nothing here knows the CRM."""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import smpplib.client
import smpplib.exceptions
import smpplib.smpp

from sms_gateway import status as st
from sms_gateway.encoding import Part

log = logging.getLogger(__name__)

LINK_LOST = -1  # pseudo status: written, but the link died before the SMSC answered
NOT_SENT = -2  # pseudo status: never written (no link): safe to send again


@dataclass(frozen=True, slots=True)
class SmppConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    source_addr: str = "Callcard"
    window: int = 50  # unanswered submit_sm at most
    max_rate: float = 0.0  # submit_sm per second, 0 = as fast as the window allows
    enquire_link_every: float = 30.0  # seconds of silence before we ask
    dead_link_after: float = 10.0  # seconds without an answer to enquire_link
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    throttle_pause: float = 1.0  # first pause after ESME_RTHROTTLED, doubled up to 8 s
    connect_timeout: float = 5.0

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> SmppConfig:
        """`smpp://system_id:password@host:2775`"""
        parts = urlsplit(url)
        if parts.scheme != "smpp" or not parts.hostname or not parts.username:
            raise ValueError(f"not an smpp://system_id:password@host:port URL: {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or 2775,
            system_id=unquote(parts.username),
            password=unquote(parts.password or ""),
            **overrides,
        )


@dataclass(slots=True)
class Submit:
    """One part to submit; `done` is called (in the IO thread) with (status, message_id)."""

    destination: str
    part: Part
    source: str
    done: Callable[[int, str | None], None]
    registered_delivery: int = 1


@dataclass(frozen=True, slots=True)
class Deliver:
    """A deliver_sm from the SMSC, to be answered with `answer(status)` once handled."""

    source: str
    destination: str
    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]
    sequence: int
    generation: int


class BindError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused by the SMSC: {st.name(status)}")
        self.status = status


class SmppConnection:
    """The IO thread and its queues. `submit()` and `answer()` may be called from any
    thread; callbacks run in the IO thread and must only hand work over."""

    def __init__(
        self,
        config: SmppConfig,
        on_deliver: Callable[[Deliver], None],
        on_state: Callable[[bool, str | None], None],
    ) -> None:
        self.config = config
        self._on_deliver = on_deliver
        self._on_state = on_state
        self._outbox: queue.SimpleQueue[Submit | tuple[int, int, int]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smpp-io", daemon=True)
        self.generation = 0
        self.bound = False
        self.last_error: str | None = None
        self.binds = 0
        self.bind_attempts = 0

    # -- called from other threads ------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake()
        self._thread.join(timeout)

    def submit(self, item: Submit) -> None:
        self._outbox.put(item)
        self._wake()

    def answer(self, deliver: Deliver, status: int) -> None:
        self._outbox.put((deliver.generation, deliver.sequence, status))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    # -- the IO thread ------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.config.reconnect_min
        waiting: deque[Submit] = deque()
        while not self._stop.is_set():
            client = None
            try:
                client = self._bind()
                delay = self.config.reconnect_min
                self._session(client, waiting)
            except BindError as e:
                self.last_error = str(e)
                log.error("%s; retrying in %.1fs", e, delay)
            except (smpplib.exceptions.ConnectionError, OSError, smpplib.exceptions.PDUError) as e:
                self.last_error = f"SMSC link: {e or type(e).__name__}"
                log.warning("%s; reconnecting in %.1fs", self.last_error, delay)
            finally:
                self._fail_unsent(waiting)
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.disconnect()
                if self.bound:
                    self.bound = False
                    self._on_state(False, self.last_error)
                elif self.last_error:
                    self._on_state(False, self.last_error)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.config.reconnect_max)
        self._fail_unsent(deque())

    def _fail_unsent(self, waiting: deque[Submit]) -> None:
        """Parts never written go back as NOT_SENT: the caller must not wait on a link
        that may stay down for hours while its claim on the message runs out."""
        while waiting:
            waiting.popleft().done(NOT_SENT, None)
        while True:
            try:
                item = self._outbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Submit):
                item.done(NOT_SENT, None)

    def _bind(self) -> smpplib.client.Client:
        cfg = self.config
        client = smpplib.client.Client(
            cfg.host, cfg.port, timeout=cfg.connect_timeout, allow_unknown_opt_params=True
        )
        self.bind_attempts += 1
        client.connect()
        try:
            client.bind_transceiver(
                system_id=cfg.system_id, password=cfg.password, system_type=cfg.system_type
            )
        except smpplib.exceptions.PDUError as e:
            client.disconnect()
            code = e.args[1] if len(e.args) > 1 else st.ESME_RBINDFAIL
            raise BindError(int(code)) from e
        except TimeoutError as e:
            client.disconnect()
            raise smpplib.exceptions.ConnectionError("bind timed out") from e
        self.generation += 1
        self.binds += 1
        self.bound = True
        self.last_error = None
        self._on_state(True, None)
        return client

    def _session(self, client: smpplib.client.Client, waiting: deque[Submit]) -> None:
        cfg = self.config
        sock = client._socket
        assert sock is not None
        in_flight: dict[int, Submit] = {}
        generation = self.generation
        last_rx = time.monotonic()
        probe_sent: float | None = None
        paused_until = 0.0
        throttle = cfg.throttle_pause
        next_slot = time.monotonic()
        try:
            while not self._stop.is_set():
                # Take new work: parts to send and deliver_sm answers.
                while True:
                    try:
                        item = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, Submit):
                        waiting.append(item)
                    elif item[0] == generation:
                        resp = smpplib.smpp.make_pdu(
                            "deliver_sm_resp", client=client, status=item[2]
                        )
                        resp.sequence = item[1]
                        client.send_pdu(resp)
                    # an answer for a dead session is dropped: the SMSC delivers again
                now = time.monotonic()
                while waiting and len(in_flight) < cfg.window and now >= paused_until:
                    if cfg.max_rate > 0:
                        if now < next_slot:
                            break
                        next_slot = max(next_slot, now - 1.0) + 1.0 / cfg.max_rate
                    item = waiting.popleft()
                    pdu = smpplib.smpp.make_pdu(
                        "submit_sm",
                        client=client,
                        source_addr_ton=5 if not item.source.isdigit() else 1,
                        source_addr_npi=0 if not item.source.isdigit() else 1,
                        source_addr=item.source,
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=item.destination,
                        esm_class=item.part.esm_class,
                        data_coding=item.part.data_coding,
                        registered_delivery=item.registered_delivery,
                        short_message=item.part.short_message,
                    )
                    in_flight[pdu.sequence] = item
                    client.send_pdu(pdu)
                    now = time.monotonic()

                if probe_sent is not None and now - probe_sent > cfg.dead_link_after:
                    raise smpplib.exceptions.ConnectionError("enquire_link not answered")
                if probe_sent is None and now - last_rx > cfg.enquire_link_every:
                    client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
                    probe_sent = now

                timeout = 0.5
                if waiting and len(in_flight) < cfg.window:
                    timeout = max(0.0, min(timeout, max(paused_until, next_slot) - now))
                readable, _, _ = select.select([sock, self._wake_r], [], [], timeout)
                if self._wake_r in readable:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                if sock not in readable:
                    continue
                # Read everything that is already there, one PDU at a time.
                while select.select([sock], [], [], 0)[0]:
                    pdu = client.read_pdu()
                    last_rx = time.monotonic()
                    probe_sent = None
                    command = pdu.command
                    if command == "submit_sm_resp" or (
                        command == "generic_nack" and pdu.sequence in in_flight
                    ):
                        sent = in_flight.pop(pdu.sequence, None)
                        if sent is None:
                            continue
                        code = int(pdu.status)
                        if code == st.ESME_RTHROTTLED:
                            # The SMSC asks us to slow down: this part waits and goes
                            # again first; others wait behind it.
                            waiting.appendleft(sent)
                            paused_until = time.monotonic() + throttle
                            throttle = min(throttle * 2, 8.0)
                            continue
                        throttle = cfg.throttle_pause
                        raw_id = getattr(pdu, "message_id", None) if code == 0 else None
                        message_id = (
                            raw_id.decode("ascii", "replace")
                            if isinstance(raw_id, bytes)
                            else raw_id
                        )
                        sent.done(code, message_id.rstrip("\x00") if message_id else None)
                    elif command == "deliver_sm":
                        self._on_deliver(_deliver_of(pdu, generation))
                    elif command == "enquire_link":
                        resp = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
                        resp.sequence = pdu.sequence
                        client.send_pdu(resp)
                    elif command == "unbind":
                        resp = smpplib.smpp.make_pdu("unbind_resp", client=client)
                        resp.sequence = pdu.sequence
                        client.send_pdu(resp)
                        raise smpplib.exceptions.ConnectionError("the SMSC unbound")
            # Stopping: say goodbye politely, briefly.
            with contextlib.suppress(Exception):
                client.send_pdu(smpplib.smpp.make_pdu("unbind", client=client))
        finally:
            # Parts written but not answered: the SMSC may or may not have them. They go
            # back to the caller as LINK_LOST; the caller decides (the CRM retries).
            for item in in_flight.values():
                item.done(LINK_LOST, None)


def _tlv_bytes(value: Any, size: int = 0) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return value.to_bytes(size or 1, "big")
    return str(value).encode("ascii", "replace")


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").rstrip("\x00")
    return str(value or "")


def _deliver_of(pdu: Any, generation: int) -> Deliver:
    tlvs: dict[int, bytes] = {}
    if getattr(pdu, "receipted_message_id", None):
        tlvs[0x001E] = _tlv_bytes(pdu.receipted_message_id)
    if getattr(pdu, "message_state", None) is not None:
        tlvs[0x0427] = _tlv_bytes(pdu.message_state, 1)
    if getattr(pdu, "network_error_code", None):
        tlvs[0x0423] = _tlv_bytes(pdu.network_error_code)
    payload = getattr(pdu, "message_payload", None)
    return Deliver(
        source=_text(pdu.source_addr),
        destination=_text(pdu.destination_addr),
        esm_class=int(pdu.esm_class or 0),
        data_coding=int(pdu.data_coding or 0),
        short_message=bytes(pdu.short_message or payload or b""),
        tlvs=tlvs,
        sequence=int(pdu.sequence),
        generation=generation,
    )
