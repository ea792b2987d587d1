"""The pjsua2 side of a bridge worker: one dedicated thread owns the library.

pjsua2 is created, polled (`libHandleEvents`) and destroyed in this thread only
(`threadCnt=0`, `mainThreadOnly`): commands arrive through a thread-safe queue and are run
between polls; what happens to legs leaves as plain messages through `emit`. Every
callback is wrapped (an exception escaping into pjsua2 loses the call's logic and keeps
a Call alive past `libDestroy`). A Call is never deleted in its own callback: a gone
leg is dropped after the poll that reported it, and a recorder is destroyed (which
finalises its WAV header) before the leg's end is reported.

Every prebuilt pjsua2 wheel allows 4 calls per process: with one caller and one phone
leg per call that is 2 bridged calls. Beyond `max_calls` an INVITE gets 503 here; past
the 4 legs pjsua itself answers 486 before the code sees the INVITE.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pjsua2 as pj

from telephony.sip import messages as msg
from telephony.sip.config import ProviderLogin
from telephony.sip.uri import parse_party

log = logging.getLogger(__name__)

ANY_ADDRESS = "0.0.0.0"
PJ_LEGS = 4  # PJSUA_MAX_CALLS of every prebuilt wheel
PJ_ETOOMANY = 70010
POLL_MS = 10
DIAL_RETRY_S = 2.0  # a leg slot freed by a CANCEL is back within milliseconds
CODECS = {"PCMA": 255, "PCMU": 254, "G722": 253}  # priorities; the rest are disabled
WAV_WAIT_S = 2.0  # a destroyed recorder's file is complete within a clock tick or two


@dataclass(slots=True)
class _Bridge:
    a: str
    b: str
    path: Path
    recorder: pj.AudioMediaRecorder | None = None
    connected: bool = False
    closed_at: float | None = None  # monotonic; the WAV is written out after it


@dataclass(slots=True)
class _Held:
    """A leg's end, reported once its call's WAV is complete (or given up on)."""

    event: msg.Ended
    bridge: _Bridge | None


@dataclass(slots=True)
class _PendingDial:
    command: msg.Dial
    until: float


@dataclass(slots=True)
class _Group:
    """One call's legs on this worker: it counts once against `max_calls`."""

    legs: set[str] = field(default_factory=set)


class _Leg(pj.Call):  # type: ignore[misc]
    def __init__(self, owner: PjBridge, account: pj.Account, leg: str, call_id: int) -> None:
        super().__init__(account, call_id)
        self.owner = owner
        self.leg = leg
        self.incoming = call_id != pj.PJSUA_INVALID_ID
        self.answered = False
        self.gone = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        try:
            self.owner._on_state(self)
        except Exception:
            log.exception("leg %s: state callback failed", self.leg)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        try:
            self.owner._on_media(self)
        except Exception:
            log.exception("leg %s: media callback failed", self.leg)


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, owner: PjBridge) -> None:
        super().__init__()
        self.owner = owner

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        try:
            self.owner._on_incoming(self, prm.callId)
        except Exception:
            log.exception("incoming call %s: callback failed", prm.callId)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        try:
            info = self.getInfo()
            self.owner._report(
                msg.Registration(
                    at=time.time(),
                    active=bool(info.regIsActive),
                    code=int(prm.code),
                    reason=str(prm.reason),
                )
            )
        except Exception:
            log.exception("registration callback failed")


class PjBridge:
    """Runs pjsua2 in its own thread; `submit` commands, receive messages via `emit`."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        recordings_dir: Path,
        emit: Callable[[msg.WorkerEvent], None],
        max_calls: int = 2,
        user_agent: str = "Callcard SIP bridge",
        tcp: bool = True,
        login: ProviderLogin | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.recordings_dir = recordings_dir
        self.emit = emit
        self.max_calls = max_calls
        self.user_agent = user_agent
        self.tcp = tcp
        self.login = login
        self._commands: queue.SimpleQueue[msg.Command] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="pjsua", daemon=True)
        self._started = threading.Event()
        self._start_error: str | None = None
        self._stop = False
        # Owned by the pj thread only:
        self._legs: dict[str, _Leg] = {}
        self._groups: dict[str, _Group] = {}  # leg -> its call's group
        self._bridges: dict[str, _Bridge] = {}  # leg -> its bridge, until the leg is gone
        self._dead: list[_Leg] = []  # dropped after the poll that reported them
        self._closing: list[_Bridge] = []  # recorders to destroy after this poll
        self._held: list[_Held] = []  # ends waiting for their recording
        self._dials: list[_PendingDial] = []
        self._next_in = 0
        self._account: _Account | None = None
        self._provider: _Account | None = None
        self._ep: pj.Endpoint | None = None

    # ------------------------------------------------------------------ any thread
    def start(self, within_s: float = 10.0) -> None:
        self._thread.start()
        if not self._started.wait(within_s):
            raise RuntimeError("pjsua did not start")
        if self._start_error is not None:
            raise RuntimeError(f"pjsua did not start: {self._start_error}")

    def submit(self, command: msg.Command) -> None:
        self._commands.put(command)

    def stop(self, within_s: float = 10.0) -> None:
        self._commands.put(msg.Stop())
        self._thread.join(within_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ pj thread
    def _run(self) -> None:
        try:
            self._create()
        except BaseException as exc:  # reported to start()
            self._start_error = exc.info() if isinstance(exc, pj.Error) else repr(exc)
            # Here, not at exit in another thread: pjlib aborts a process that calls it
            # from a thread it does not know.
            self._destroy()
            self._started.set()
            return
        self._started.set()
        ep = self._ep
        assert ep is not None
        try:
            while not self._stop:
                ep.libHandleEvents(POLL_MS)
                self._after_poll()
                self._run_commands()
        finally:
            self._destroy()

    def _create(self) -> None:
        ep = pj.Endpoint()
        ep.libCreate()
        self._ep = ep
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = PJ_LEGS
        cfg.uaConfig.userAgent = self.user_agent
        cfg.logConfig.level = 3
        cfg.logConfig.consoleLevel = 2  # warnings and errors on stderr only
        cfg.medConfig.noVad = True
        ep.libInit(cfg)
        transport = pj.TransportConfig()
        transport.port = self.port
        transport.boundAddress = self.host
        if self.host != ANY_ADDRESS:  # otherwise pjsua advertises the interface it picks
            transport.publicAddress = self.host
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        if self.tcp:
            ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, transport)
        ep.libStart()
        ep.audDevManager().setNullDev()
        # G.711 (A-law first, as Russian and European carriers) and G.722: what trunks and
        # desk phones speak. The SDP stays short: pjsip sends an INVITE over 1300 bytes by
        # TCP, from a port Kamailio cannot tell from the trunk's (it knows a worker by its
        # UDP port).
        for codec in ep.codecEnum2():
            ep.codecSetPriority(codec.codecId, CODECS.get(codec.codecId.split("/")[0], 0))
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:callcard@{self.host}:{self.port}"
        media = acfg.mediaConfig.transportConfig
        media.boundAddress = self.host
        if self.host != ANY_ADDRESS:
            media.publicAddress = self.host
        media.port = 0  # any free port pair
        account = _Account(self)
        account.create(acfg, True)
        self._account = account
        if self.login is not None:
            self._provider = self._register(self.login, acfg)
        log.info("SIP bridge listening on %s:%s", self.host, self.port)

    def _register(self, login: ProviderLogin, local: pj.AccountConfig) -> _Account:
        cfg = pj.AccountConfig()
        domain = login.domain or login.registrar.split(":", 1)[-1].split(";")[0]
        cfg.idUri = f"sip:{login.username}@{domain.rsplit(':', 1)[0]}"
        cfg.regConfig.registrarUri = login.registrar
        cfg.regConfig.timeoutSec = login.expires_s
        cfg.regConfig.retryIntervalSec = login.retry_s
        cfg.regConfig.firstRetryIntervalSec = login.retry_s
        cfg.regConfig.randomRetryIntervalSec = 0
        cfg.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", "*", login.username, 0, login.password)
        )
        cfg.mediaConfig = local.mediaConfig
        provider = _Account(self)
        provider.create(cfg)
        log.info("registering %s at %s", cfg.idUri, login.registrar)
        return provider

    def _destroy(self) -> None:
        ep = self._ep
        if ep is None:
            return
        try:
            ep.hangupAllCalls()
            until = time.monotonic() + 2.0
            while self._legs and time.monotonic() < until:
                ep.libHandleEvents(POLL_MS)
                self._after_poll()
        except Exception:
            log.exception("hanging up the calls left at shutdown failed")
        for bridge in [*self._bridges.values(), *self._closing]:
            self._close(bridge)
        self._bridges.clear()
        self._closing.clear()
        self._release(block=True)
        self._legs.clear()
        self._dead.clear()
        self._provider = None
        self._account = None
        ep.libDestroy()
        self._ep = None

    def _run_commands(self) -> None:
        now = time.monotonic()
        retry, self._dials = self._dials, []
        for pending in retry:
            self._dial(pending.command, pending.until if pending.until > now else None)
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                self._run_command(command)
            except Exception:
                log.exception("bridge command %r failed", command)

    def _run_command(self, command: msg.Command) -> None:
        if isinstance(command, msg.Stop):
            self._stop = True
        elif isinstance(command, msg.Dial):
            self._dial(command, time.monotonic() + DIAL_RETRY_S)
        elif isinstance(command, msg.Ring | msg.Answer):
            leg = self._legs.get(command.leg)
            if leg is not None and not leg.gone:
                code = 180 if isinstance(command, msg.Ring) else 200
                self._answer(leg, code)
        elif isinstance(command, msg.Bridge):
            self._bridge(command)
        elif isinstance(command, msg.Hangup):
            self._hangup(command)

    def _answer(self, leg: _Leg, code: int) -> None:
        op = pj.CallOpParam()
        op.statusCode = code
        try:
            leg.answer(op)
        except pj.Error as exc:
            # An offer the media side cannot take (unknown codecs): refuse the leg.
            log.warning("leg %s: answer %s failed (%s)", leg.leg, code, exc.info())
            self._end_leg(leg, 488 if code >= 200 else 500)

    def _end_leg(self, leg: _Leg, code: int) -> None:
        op = pj.CallOpParam()
        op.statusCode = code
        try:
            leg.hangup(op)
        except pj.Error as exc:
            log.warning("leg %s: hangup failed (%s)", leg.leg, exc.info())

    def _hangup(self, command: msg.Hangup) -> None:
        pending = next((p for p in self._dials if p.command.leg == command.leg), None)
        if pending is not None:
            self._dials.remove(pending)
            self._report(msg.Ended(leg=command.leg, at=time.time(), code=487, reason="cancelled"))
            return
        leg = self._legs.get(command.leg)
        if leg is None or leg.gone:
            return
        # The code is the final response of an unanswered incoming leg; pjsua sends CANCEL
        # for an unanswered outgoing one and BYE for an answered one.
        self._end_leg(leg, command.code)

    def _dial(self, command: msg.Dial, retry_until: float | None) -> None:
        if command.pair is None and self._calls() >= self.max_calls:
            self._report(msg.Ended(leg=command.leg, at=time.time(), code=503, reason="full"))
            return
        if command.pair is not None and command.pair not in self._legs:
            self._report(msg.Ended(leg=command.leg, at=time.time(), code=487, reason="pair gone"))
            return
        assert self._account is not None
        leg = _Leg(self, self._account, command.leg, pj.PJSUA_INVALID_ID)
        op = pj.CallOpParam(True)
        if command.reference:
            op.txOption.headers.append(_header("X-Callcard-Reference", command.reference))
        if command.caller:
            # The client's number on the manager's phone (From is the bridge's account).
            user = "".join(c for c in command.caller if c.isalnum() or c in "+*#._-")
            name = "".join(c for c in command.caller_name or "" if c not in '"\\\r\n')
            address = f"<sip:{user}@{self.host}>"
            identity = f'"{name}" {address}' if name else address
            op.txOption.headers.append(_header("P-Asserted-Identity", identity))
        try:
            leg.makeCall(command.uri, op)
        except pj.Error as exc:
            if exc.status == PJ_ETOOMANY and retry_until is not None:
                self._dials.append(_PendingDial(command, retry_until))
                return
            log.warning("dial %s to %s failed: %s", command.leg, command.uri, exc.info())
            self._report(msg.Ended(leg=command.leg, at=time.time(), code=500, reason="dial"))
            return
        self._legs[command.leg] = leg
        group = self._groups[command.pair] if command.pair is not None else _Group()
        group.legs.add(command.leg)
        self._groups[command.leg] = group

    def _calls(self) -> int:
        return len({id(g) for g in self._groups.values()}) + len(
            [p for p in self._dials if p.command.pair is None]
        )

    def _on_incoming(self, account: _Account, call_id: int) -> None:
        self._next_in += 1
        leg = _Leg(self, account, f"i{self._next_in}", call_id)
        info = leg.getInfo()
        if self._calls() >= self.max_calls:
            # Counted by the pool; the leg is dropped after this poll.
            self._end_leg(leg, 503)
            leg.gone = True
            self._dead.append(leg)
            self._report(msg.Refused(at=time.time(), code=503, reason="worker full"))
            return
        caller = parse_party(info.remoteUri)
        callee = parse_party(info.localUri)
        self._legs[leg.leg] = leg
        group = _Group({leg.leg})
        self._groups[leg.leg] = group
        self._report(
            msg.Incoming(
                leg=leg.leg,
                at=time.time(),
                caller=caller.user,
                caller_name=caller.name,
                did=callee.user,
                sip_call_id=info.callIdString,
            )
        )

    def _on_state(self, leg: _Leg) -> None:
        if leg.gone:
            return
        info = leg.getInfo()
        state = info.state
        if state == pj.PJSIP_INV_STATE_EARLY and not leg.incoming:
            self._report(msg.Progress(leg=leg.leg, at=time.time(), code=info.lastStatusCode))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED:
            leg.answered = True
            self._report(msg.Answered(leg=leg.leg, at=time.time()))
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            leg.gone = True
            code = 200 if leg.answered else int(info.lastStatusCode or 500)
            bridge = self._gone(leg.leg)
            self._dead.append(leg)
            ended = msg.Ended(leg=leg.leg, at=time.time(), code=code, reason=info.lastReason)
            self._held.append(_Held(ended, bridge))

    def _gone(self, leg_id: str) -> _Bridge | None:
        self._legs.pop(leg_id, None)
        group = self._groups.pop(leg_id, None)
        if group is not None:
            group.legs.discard(leg_id)
        bridge = self._bridges.pop(leg_id, None)
        if bridge is not None and bridge.closed_at is None:
            bridge.closed_at = time.monotonic()
            self._closing.append(bridge)
        return bridge

    def _bridge(self, command: msg.Bridge) -> None:
        if command.a not in self._legs or command.b not in self._legs:
            return  # one side is gone already: its end is on the way
        name = Path(command.recording).name
        bridge = _Bridge(command.a, command.b, self.recordings_dir / name)
        self._bridges[command.a] = self._bridges[command.b] = bridge
        self._connect(bridge)

    def _on_media(self, leg: _Leg) -> None:
        bridge = self._bridges.get(leg.leg)
        if bridge is not None:
            self._connect(bridge)

    def _connect(self, bridge: _Bridge) -> None:
        if bridge.connected:
            return
        a, b = self._legs[bridge.a], self._legs[bridge.b]
        if not (_has_audio(a) and _has_audio(b)):
            return  # the other's media comes up with its own callback
        audio_a, audio_b = a.getAudioMedia(-1), b.getAudioMedia(-1)
        audio_a.startTransmit(audio_b)
        audio_b.startTransmit(audio_a)
        try:
            recorder = pj.AudioMediaRecorder()
            recorder.createRecorder(str(bridge.path))
            audio_a.startTransmit(recorder)
            audio_b.startTransmit(recorder)
            bridge.recorder = recorder
        except pj.Error as exc:
            log.error("recording %s failed: %s", bridge.path, exc.info())
        bridge.connected = True

    def _close(self, bridge: _Bridge) -> None:
        # Destroying the recorder makes the conference's clock thread write the WAV's
        # final sizes a moment later (pjmedia 2.14+ removes conference ports asynchronously).
        bridge.recorder = None
        if bridge.closed_at is None:
            bridge.closed_at = time.monotonic()

    def _after_poll(self) -> None:
        for bridge in self._closing:
            self._close(bridge)
        self._closing.clear()
        if self._held:
            self._release()
        self._dead.clear()

    def _release(self, *, block: bool = False) -> None:
        """Reports the held ends whose recording is complete, in order."""
        while self._held:
            held = self._held[0]
            bridge = held.bridge
            if bridge is not None and bridge.connected and not _wav_complete(bridge.path):
                if time.monotonic() - (bridge.closed_at or 0.0) < WAV_WAIT_S:
                    if not block:
                        return
                    time.sleep(POLL_MS / 1000)
                    continue
                log.error("recording %s was not completed in time", bridge.path)
            self._held.pop(0)
            self._report(held.event)

    def _report(self, event: msg.WorkerEvent) -> None:
        try:
            self.emit(event)
        except Exception:
            log.exception("reporting %r failed", event)


def _header(name: str, value: str) -> pj.SipHeader:
    header = pj.SipHeader()
    header.hName = name
    header.hValue = "".join(c for c in value if c not in "\r\n")
    return header


def _wav_complete(path: Path) -> bool:
    """The RIFF header's size is the file's: the recorder has written its final header."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            size = path.stat().st_size
    except OSError:
        return False
    return len(head) == 8 and int.from_bytes(head[4:8], "little") == size - 8 > 36


def _has_audio(leg: _Leg) -> bool:
    try:
        info = leg.getInfo()
    except pj.Error:
        return False
    return any(
        m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE
        for m in info.media
    )
