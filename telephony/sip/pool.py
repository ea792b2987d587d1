"""The bridge pool: N worker processes, the calls' state machines, the call events out.

Each worker (`worker.py`) is a separate process owning one pjsua2 instance on
`host:port+i`; this side drives every call it carries (`machine.py`), asks the routing
policy, and hands the normalized call events to the sink in order, from one dispatcher
task (a slow sink never holds a call up). A worker that dies is restarted, and each call
it carried ends as failed: reported, never lost. The pool is also the `Pbx` that
click-to-call uses (`originate`), placing the call on the least loaded worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import telephony
from telephony import events as ev
from telephony.pbx import OriginateRequest, PbxError
from telephony.sip import messages as msg
from telephony.sip.config import CONFIG_VARIABLE, ProviderLogin, WorkerConfig
from telephony.sip.machine import AskRoute, BridgeCall, ClickToCall, InboundCall, Output, Phone
from telephony.sip.uri import dial_uri

log = logging.getLogger(__name__)

Sink = Callable[[ev.CallEvent], Awaitable[None]]
Router = Callable[[AskRoute], Awaitable[str | Phone | None]]
TICK_S = 0.2
# The workers import this very package, wherever it was imported from.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(telephony.__file__)))


@dataclass(frozen=True, slots=True)
class PoolConfig:
    recordings_dir: Path
    host: str = "127.0.0.1"
    port: int = 5070  # worker i listens on port + i (UDP and TCP)
    workers: int = 1
    phone_uri: str = "sip:{user}@127.0.0.1:5060"  # where an extension is dialled
    trunk_uri: str = "sip:{user}@127.0.0.1:5080"  # where click-to-call dials the client
    ring_timeout_s: float = 20.0  # a manager's phone rings this long before the next
    max_attempts: int = 3  # managers tried for one incoming call
    route_within_s: float = 2.0  # the routing policy's answer, else nobody
    agent_timeout_s: float = 30.0  # click-to-call: the manager's own phone
    client_timeout_s: float = 45.0  # click-to-call: the client's phone
    max_calls: int = 2  # per worker: 4 pjsua legs, two per bridged call
    restart_backoff_s: float = 0.5
    tcp: bool = True
    # Every call id starts with it: the calls a dead pool left live are found by it.
    call_prefix: str = "sip-"
    # The first worker registers at the provider (a bridge facing it directly; behind
    # Kamailio use an IP-authenticated trunk instead).
    login: ProviderLogin | None = None


@dataclass(slots=True)
class WorkerStatus:
    address: str
    pid: int | None = None
    alive: bool = False
    calls: int = 0
    taken: int = 0  # calls carried since the pool started
    starts: int = 0
    exits: int = 0  # ends of a worker process other than the pool stopping it
    refused: int = 0  # INVITEs answered 503 (full)
    failed_calls: int = 0  # calls lost with a dead worker
    registered: bool | None = None  # at the provider; None when it does not register
    registration: str = ""  # the registrar's last answer

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "pid": self.pid,
            "alive": self.alive,
            "calls": self.calls,
            "taken": self.taken,
            "starts": self.starts,
            "exits": self.exits,
            "refused": self.refused,
            "failed_calls": self.failed_calls,
            "registered": self.registered,
            "registration": self.registration,
        }


class _Worker:
    def __init__(self, index: int, config: PoolConfig) -> None:
        self.index = index
        self.config = WorkerConfig(
            host=config.host,
            port=config.port + index,
            recordings_dir=str(config.recordings_dir),
            max_calls=config.max_calls,
            tcp=config.tcp,
            login=config.login if index == 0 else None,
        )
        self.status = WorkerStatus(address=f"{config.host}:{config.port + index}")
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.calls: dict[str, BridgeCall] = {}
        self.legs: dict[str, str] = {}  # leg id -> call id
        self.task: asyncio.Task[None] | None = None

    def send(self, command: msg.Command) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return  # it died: the call was reported failed
        with contextlib.suppress(ConnectionError, RuntimeError):
            proc.stdin.write(msg.encode(command))

    def free(self) -> int:
        return self.config.max_calls - len(self.calls) if self.ready.is_set() else 0


@dataclass(slots=True)
class PoolStatus:
    workers: list[WorkerStatus] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "workers": [w.as_dict() for w in self.workers],
            "live_calls": sum(w.calls for w in self.workers),
        }


class SipPool:
    def __init__(self, config: PoolConfig, sink: Sink, router: Router) -> None:
        self.config = config
        self._sink = sink
        self._router = router
        self._workers = [_Worker(i, config) for i in range(config.workers)]
        self.status = PoolStatus([w.status for w in self._workers])
        self._queue: asyncio.Queue[ev.CallEvent] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._asks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._stopped = asyncio.Event()  # cuts a restart's backoff short

    # ------------------------------------------------------------ lifecycle
    async def start(self, within_s: float = 15.0) -> None:
        """Starts every worker and returns once all listen; raises `PbxError` (and stops
        what started) when one cannot start, e.g. its port is taken."""
        self._stopping = False
        self._stopped.clear()
        self._tasks = [
            asyncio.create_task(self._dispatch(), name="sip-dispatch"),
            asyncio.create_task(self._ticker(), name="sip-tick"),
        ]
        for worker in self._workers:
            worker.task = asyncio.create_task(self._supervise(worker), name=f"sip-{worker.index}")
        deadline = asyncio.get_running_loop().time() + within_s
        while not all(w.ready.is_set() for w in self._workers):
            failed = [w.status.address for w in self._workers if w.status.exits]
            late = asyncio.get_running_loop().time() > deadline
            if failed or late:
                await self.stop()
                why = f"exited at start: {', '.join(failed)}" if failed else "did not start"
                raise PbxError("sip_unavailable", f"SIP bridge worker {why}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        for worker in self._workers:
            worker.send(msg.Stop())
        supervisors = [w.task for w in self._workers if w.task is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*supervisors, return_exceptions=True), 10)
        for worker in self._workers:
            if worker.proc is not None and worker.proc.returncode is None:
                worker.proc.kill()
                await worker.proc.wait()
            if worker.task is not None:
                worker.task.cancel()
        for task in list(self._asks):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), 10)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def emit(self, events: list[ev.CallEvent]) -> None:
        """Events of the bridge's calls from beside the pool (the sweeper's ends), sent
        after those already queued."""
        for call_event in events:
            self._queue.put_nowait(call_event)

    async def drain(self) -> None:
        """Wait until every call event so far has reached the sink."""
        await self._queue.join()

    @property
    def up(self) -> bool:
        """Some worker takes calls, and the provider registration (if any) holds."""
        workers = self.status.workers
        return any(w.alive for w in workers) and all(w.registered is not False for w in workers)

    def pids(self) -> list[int | None]:
        return [w.status.pid for w in self._workers]

    def worker_of(self, call_id: str) -> int | None:
        """The index of the worker carrying a live call."""
        return next((w.index for w in self._workers if call_id in w.calls), None)

    # ----------------------------------------------------------- Pbx protocol
    async def originate(self, request: OriginateRequest) -> None:
        if not any(w.ready.is_set() for w in self._workers):
            raise PbxError("pbx_unreachable", "no SIP bridge worker is running")
        worker = max(self._workers, key=lambda w: w.free())
        if worker.free() <= 0:
            raise PbxError("pbx_busy", "every SIP bridge worker is full")
        try:
            agent_uri = request.agent_uri or dial_uri(request.agent, self.config.phone_uri)
            client_uri = dial_uri(request.number, self.config.trunk_uri)
        except ValueError as exc:
            raise PbxError("invalid_number", str(exc)) from None
        call = ClickToCall(
            call_id=self._new_call_id(),
            crm_call_id=request.crm_call_id,
            agent=request.agent,
            agent_uri=agent_uri,
            number=request.number,
            client_uri=client_uri,
            at=datetime.now(UTC),
            agent_timeout_s=min(request.timeout_s, self.config.agent_timeout_s),
            client_timeout_s=self.config.client_timeout_s,
            recordings_dir=str(self.config.recordings_dir),
        )
        self._adopt(worker, call)
        self._run(worker, call, call.start())

    async def redirect(self, call_id: str, extension: str) -> None:
        raise PbxError("not_supported", "the SIP bridge does not transfer calls yet")

    async def hangup(self, call_id: str) -> None:
        for worker in self._workers:
            call = worker.calls.get(call_id)
            if call is not None:
                self._run(worker, call, call.hangup(datetime.now(UTC)))
                return
        raise PbxError("call_not_found", f"no live call {call_id}")

    # -------------------------------------------------------------- workers
    async def _supervise(self, worker: _Worker) -> None:
        while not self._stopping:
            try:
                await self._run_worker(worker)
            except Exception:
                log.exception("SIP worker %s failed", worker.status.address)
            self._worker_gone(worker)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.config.restart_backoff_s)

    async def _run_worker(self, worker: _Worker) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
        env[CONFIG_VARIABLE] = worker.config.to_json()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "telephony.sip.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            # Stopped by the pool (Stop, or its stdin closing), not by a terminal's Ctrl-C
            # meant for the pool: a worker ending first would look like a crash.
            start_new_session=True,
        )
        worker.proc = proc
        worker.status.pid = proc.pid
        worker.status.starts += 1
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                event = msg.decode(line)
            except msg.BadMessage as exc:
                log.error("SIP worker %s: %s", worker.status.address, exc)
                continue
            try:
                self._on_worker_event(worker, event)  # type: ignore[arg-type]
            except Exception:
                log.exception("SIP worker %s: handling %r failed", worker.status.address, event)
        code = await proc.wait()
        if not self._stopping:
            worker.status.exits += 1
            log.error("SIP worker %s (pid %s) exited: %s", worker.status.address, proc.pid, code)

    def _worker_gone(self, worker: _Worker) -> None:
        worker.ready.clear()
        worker.status.alive = False
        if worker.config.login is not None:
            worker.status.registered = False
        now = datetime.now(UTC)
        lost = [call for call in worker.calls.values() if not call.ended]
        for call in lost:
            self._run(worker, call, call.abort(now))
        if lost:
            worker.status.failed_calls += len(lost)
            log.error(
                "SIP worker %s is gone: %d call(s) ended as failed",
                worker.status.address,
                len(lost),
            )
        worker.calls.clear()
        worker.legs.clear()
        worker.status.calls = 0

    def _on_worker_event(self, worker: _Worker, event: msg.WorkerEvent) -> None:
        if isinstance(event, msg.Ready):
            worker.status.alive = True
            worker.ready.set()
            log.info("SIP worker %s ready (pid %s)", event.address, event.pid)
            return
        if isinstance(event, msg.Registration):
            worker.status.registered = event.active
            worker.status.registration = f"{event.code} {event.reason}"
            level = logging.INFO if event.active else logging.WARNING
            log.log(level, "SIP registration at the provider: %s", worker.status.registration)
            return
        if isinstance(event, msg.Refused):
            worker.status.refused += 1
            log.warning("SIP worker %s refused an INVITE: %s", worker.status.address, event.reason)
            return
        at = datetime.fromtimestamp(event.at, UTC)
        if isinstance(event, msg.Incoming):
            call = InboundCall(
                call_id=self._new_call_id(),
                leg=event.leg,
                caller=event.caller,
                caller_name=event.caller_name,
                did=event.did,
                at=at,
                ring_timeout_s=self.config.ring_timeout_s,
                max_attempts=self.config.max_attempts,
                phone_uri=self.config.phone_uri,
                recordings_dir=str(self.config.recordings_dir),
                sip_call_id=event.sip_call_id,
            )
            self._adopt(worker, call)
            self._run(worker, call, call.start())
            return
        call_id = worker.legs.get(event.leg)
        if isinstance(event, msg.Ended):
            worker.legs.pop(event.leg, None)
        existing = worker.calls.get(call_id) if call_id else None
        if existing is not None:
            self._run(worker, existing, existing.on_event(event, at))

    def _adopt(self, worker: _Worker, call: BridgeCall) -> None:
        worker.calls[call.call_id] = call
        worker.status.taken += 1
        for leg in call.legs():
            worker.legs[leg] = call.call_id
        worker.status.calls = len(worker.calls)

    # ----------------------------------------------------------- call outputs
    def _run(self, worker: _Worker, call: BridgeCall, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, AskRoute):
                task = asyncio.create_task(self._route(worker, call, out))
                self._asks.add(task)
                task.add_done_callback(self._asks.discard)
            elif isinstance(out, ev.CallEvent):
                self._queue.put_nowait(out)
            else:
                if isinstance(out, msg.Dial):
                    worker.legs[out.leg] = call.call_id
                worker.send(out)
        if call.ended:
            worker.calls.pop(call.call_id, None)
            worker.status.calls = len(worker.calls)

    async def _route(self, worker: _Worker, call: BridgeCall, ask: AskRoute) -> None:
        try:
            target = await asyncio.wait_for(self._router(ask), self.config.route_within_s)
        except TimeoutError:
            log.warning("routing %s took too long: nobody", ask.call_id)
            target = None
        except Exception:
            log.exception("routing %s failed: nobody", ask.call_id)
            target = None
        if isinstance(call, InboundCall) and worker.calls.get(call.call_id) is call:
            self._run(worker, call, call.routed(ask.attempt, target, datetime.now(UTC)))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = datetime.now(UTC)
            for worker in self._workers:
                for call in list(worker.calls.values()):
                    self._run(worker, call, call.tick(now))

    async def _dispatch(self) -> None:
        while True:
            call_event = await self._queue.get()
            try:
                await self._sink(call_event)
            except Exception:
                log.exception("call event sink failed on %r", call_event)
            finally:
                self._queue.task_done()

    def _new_call_id(self) -> str:
        return f"{self.config.call_prefix}{uuid.uuid4().hex[:20]}"
