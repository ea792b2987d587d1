"""An AMI server that speaks Asterisk's wire protocol and replays real captures.

Asterisk is not packaged here, so the adapter is tested against this: the banner, Login
(a wrong secret gets `Response: Error` / `Authentication failed` and the connection is
closed, like the bad-login capture), ActionID-tagged responses, Ping, CoreShowChannels
(from a channel table kept from the events it sent), Originate (replays the
click-to-call capture with the request's agent, number, CRM_CALL_ID and ActionID),
Redirect, Hangup, Command, Logoff. Every replay gets fresh Uniqueid/Linkedid, channel
names, bridge ids and CDR times, so replays never collide. For tests it can play a
capture on demand (whole or in parts), drop every connection, or go silent.
`callcard pbx-sim` generates calls: by default at human timing (phones ring for seconds,
people talk for tens of seconds) and ringing the given agents' phones in turn, so a demo
operator sees a pop that stays while it rings; `--fast` replays at wire speed for load.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from telephony.ami.frames import Action, AmiParser, Event, encode_message

log = logging.getLogger(__name__)

CAPTURES = Path(__file__).parent / "captures"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
# `core show version` of the Asterisk the captures come from.
VERSION_OUTPUT = (
    "Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux on 2026-11-22 22:18:12 UTC"
)
CALL_SCENARIOS = (
    "incoming-answered",
    "incoming-missed",
    "incoming-busy",
    "incoming-agi-routed",
    "redirect",
    "queue-call",
    "click-to-call",
)
# The extensions the captures' phones have: a replay rings the agents given instead.
CAPTURE_AGENTS = ("101", "102", "103")
# Events of the capturing connection itself, not of the calls.
_SESSION_EVENTS = frozenset({"SuccessfulAuth", "FullyBooted", "ChallengeSent"})
_UID = re.compile(r"\b(1\d{9})\.(\d+)\b")
_CHAN = re.compile(r"-([0-9a-f]{8})\b")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_CDR_TIMES = ("StartTime", "AnswerTime", "EndTime")
_CDR_FORMAT = "%Y-%m-%d %H:%M:%S"
# What the click-to-call capture dialled: replaced by each Originate's own values.
_C2C = {"agent": "102", "number": "79161234567", "crm": "crm-5001", "action": "c2c-0001"}

Pairs = list[tuple[str, str]]
# The channel snapshot every channel event carries, in Asterisk's order.
_SNAPSHOT = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)
# OriginateResponse Reason -> how the agent's leg ended: DialStatus, Hangup cause, text.
_ORIGINATE_HANGUP = {
    5: ("BUSY", "17", "User busy"),
    3: ("NOANSWER", "19", "No answer"),
}


@cache
def load_capture(name: str, directory: Path = CAPTURES) -> tuple[Event, ...]:
    """The call events of a capture, in order (replies to its own actions left out)."""
    data = (directory / f"{name}.ami.txt").read_bytes()
    out = []
    for message in AmiParser().feed(data):
        if not isinstance(message, Event) or message.name in _SESSION_EVENTS:
            continue
        if message.action_id and message.name != "OriginateResponse":
            continue  # CoreShowChannel, QueueMember...: list replies, not call events
        out.append(message)
    return tuple(out)


class _Renamer:
    """Fresh ids and times for one replay of a capture."""

    _seq = itertools.count(1000)
    _chan = itertools.count(0x1000)

    def __init__(self, events: Sequence[Event], literals: dict[str, str]) -> None:
        epochs = [int(m.group(1)) for e in events for m in _UID.finditer(e.get("Uniqueid"))]
        self._base = min(epochs) if epochs else int(time.time())
        self._now = int(time.time())
        self._uids: dict[str, str] = {}
        self._chans: dict[str, str] = {}
        self._uuids: dict[str, str] = {}
        # One pattern for all: literals are swapped at once (101 -> 102 -> 103 stays 102).
        self._literals = {old: new for old, new in literals.items() if old != new}
        alternatives = "|".join(map(re.escape, sorted(self._literals, key=len, reverse=True)))
        self._literal = re.compile(rf"(?<![\w.])(?:{alternatives})(?![\w.])")
        self.cdr_shift = timedelta(0)
        starts = [e.get("StartTime") for e in events if e.name == "Cdr" and e.get("StartTime")]
        if starts:
            first = datetime.strptime(min(starts), _CDR_FORMAT)
            self.cdr_shift = datetime.fromtimestamp(self._now) - first

    def _uid(self, match: re.Match[str]) -> str:
        old = match.group(0)
        new = self._uids.get(old)
        if new is None:
            epoch = self._now + int(match.group(1)) - self._base
            new = self._uids[old] = f"{epoch}.{next(self._seq)}"
        return new

    def _channel(self, match: re.Match[str]) -> str:
        old = match.group(1)
        new = self._chans.get(old)
        if new is None:
            new = self._chans[old] = f"{next(self._chan):08x}"
        return f"-{new}"

    def _bridge(self, match: re.Match[str]) -> str:
        return self._uuids.setdefault(match.group(0), str(uuid.uuid4()))

    def value(self, key: str, value: str) -> str:
        if not value:
            return value
        if key in _CDR_TIMES:
            try:
                moved = datetime.strptime(value, _CDR_FORMAT) + self.cdr_shift
            except ValueError:
                return value
            return moved.strftime(_CDR_FORMAT)
        if "." in value:
            value = _UID.sub(self._uid, value)
        if "/" in value:
            value = _CHAN.sub(self._channel, value)
        if "-" in value and len(value) >= 36:
            value = _UUID.sub(self._bridge, value)
        if self._literals:
            value = self._literal.sub(lambda m: self._literals[m.group(0)], value)
        return value

    def event(self, event: Event) -> Pairs:
        return [(key, self.value(key, value)) for key, value in event.items()]


def prepare(
    name: str, *, literals: dict[str, str] | None = None, directory: Path = CAPTURES
) -> list[Pairs]:
    """One fresh replay of a capture: its events with new ids, ready to send."""
    events = load_capture(name, directory)
    renamer = _Renamer(events, literals or {})
    return [renamer.event(event) for event in events]


def overlapping(calls: Sequence[list[Pairs]], apart: int) -> list[Pairs]:
    """The calls' events in the order a busy PBX writes them: each call's in its own order,
    a new call starting every `apart` events of the one before (a call of 90 events at
    `apart=3` overlaps the next 30)."""
    timed = sorted(
        (k * apart + i, k, i) for k, events in enumerate(calls) for i in range(len(events))
    )
    return [calls[k][i] for _, k, i in timed]


def linkedid_of(pairs: Pairs) -> str | None:
    # A Cdr has only its channel's UniqueID: the first leg's is the Linkedid.
    return next((v for k, v in pairs if k in ("Linkedid", "DestLinkedid", "UniqueID")), None)


@dataclass(frozen=True, slots=True)
class Timing:
    """How long a replayed call takes. The captures carry no times, so the pauses go where
    people act: a phone rings (`ring`), two people talk (`talk`), a caller waits in a queue
    nobody is free for (`hold`). Each pause is drawn from its (low, high) seconds."""

    pace: float = 0.0  # between any two events
    ring: tuple[float, float] = (0.0, 0.0)
    talk: tuple[float, float] = (0.0, 0.0)
    hold: tuple[float, float] = (0.0, 0.0)

    def pause(self, span: tuple[float, float]) -> float:
        low, high = span
        return random.uniform(low, high) if high > 0 else 0.0


FAST = Timing(pace=0.01)
HUMAN = Timing(pace=0.02, ring=(4.0, 8.0), talk=(15.0, 40.0), hold=(8.0, 15.0))
_RING_ENDS = frozenset({"DialEnd", "AgentRingNoAnswer", "HangupRequest", "AgentConnect"})
_TALK_ENDS = frozenset(
    {"HangupRequest", "SoftHangupRequest", "BridgeLeave", "Hangup", "BlindTransfer"}
)


@dataclass(slots=True)
class _Moment:
    """Where one call of a replay stands, to know which pause comes next."""

    ringing: bool = False
    talking: bool = False
    queued: bool = False


def _pause_before(timing: Timing, pairs: Pairs, moments: dict[str, _Moment]) -> float:
    name = pairs[0][1] if pairs and pairs[0][0] == "Event" else ""
    moment = moments.setdefault(linkedid_of(pairs) or "", _Moment())
    pause = 0.0
    if moment.ringing and name in _RING_ENDS:
        busy = ("DialStatus", "BUSY") in pairs  # a busy phone answers at once
        moment.ringing, pause = False, 0.0 if busy else timing.pause(timing.ring)
    elif moment.talking and name in _TALK_ENDS:
        moment.talking, pause = False, timing.pause(timing.talk)
    elif moment.queued and name == "QueueCallerAbandon":
        moment.queued, pause = False, timing.pause(timing.hold)
    if name == "DialBegin":
        moment.ringing, moment.queued = True, False
    elif name == "BridgeEnter":
        moment.talking = True
    elif name == "QueueCallerJoin":
        moment.queued = True
    return pause


def agent_literals(agents: Sequence[str], turn: int) -> dict[str, str]:
    """The captures' phones as the given agents, the first of them starting at `turn`."""
    if not agents:
        return {}
    return {captured: agents[(turn + i) % len(agents)] for i, captured in enumerate(CAPTURE_AGENTS)}


@dataclass(slots=True, eq=False)
class _Session:
    writer: asyncio.StreamWriter
    authed: bool = False
    events: bool = True
    actions: list[Action] = field(default_factory=list)


@dataclass(slots=True)
class SimStats:
    calls: int = 0
    events: int = 0
    connections: int = 0
    logins: int = 0
    failed_logins: int = 0


class AmiSimulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "crm",
        secret: str = "crmsecret",
        captures: Path = CAPTURES,
        bad_login_close_s: float = 1.0,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.secret = secret
        self.captures = captures
        self.bad_login_close_s = bad_login_close_s
        self.silent = False  # read but never answer nor send events (a hung Asterisk)
        # Agent -> OriginateResponse Reason for an Originate that fails (0 offline, 3
        # no answer, 5 busy, 8 congestion); other agents answer like click-to-call.
        self.originate_failures: dict[str, int] = {}
        self.originate_pace = 0.0
        self.received: list[Action] = []  # every action of every session, in order
        self.stats = SimStats()
        self._sessions: set[_Session] = set()
        self._channels: dict[str, dict[str, str]] = {}  # Uniqueid -> CoreShowChannel fields
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._hung_up: set[str] = set()  # Linkedids ended by a Hangup action
        self._logged_in = asyncio.Event()

    @property
    def url(self) -> str:
        return f"ami://{self.username}:{self.secret}@{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AmiSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ test hooks
    @property
    def sessions(self) -> int:
        return sum(1 for s in self._sessions if s.authed)

    def drop_connections(self) -> None:
        """Cut every client connection at once, as a crashed Asterisk or network would."""
        for session in list(self._sessions):
            transport = session.writer.transport
            if transport is not None:
                transport.abort()
        self._sessions.clear()

    def inject(self, data: bytes) -> None:
        """Raw bytes to every logged-in client: garbage, or a frame cut anywhere."""
        for session in self._sessions:
            if session.authed:
                session.writer.write(data)

    def actions_named(self, name: str) -> list[Action]:
        return [a for a in self.received if a.get("Action").lower() == name.lower()]

    @property
    def live_channels(self) -> list[dict[str, str]]:
        return list(self._channels.values())

    async def play(
        self,
        name: str,
        *,
        pace: float = 0.0,
        literals: dict[str, str] | None = None,
        timing: Timing | None = None,
    ) -> list[Pairs]:
        """Replay a capture's call events to every logged-in client; returns what was sent."""
        events = prepare(name, literals=literals, directory=self.captures)
        self.stats.calls += 1
        await self.emit(events, pace=pace, timing=timing)
        return events

    async def emit(
        self, events: Iterable[Pairs], *, pace: float = 0.0, timing: Timing | None = None
    ) -> None:
        moments: dict[str, _Moment] = {}
        for pairs in events:
            if timing is not None:
                pause = _pause_before(timing, pairs, moments)
                if pause:
                    await self._drain()
                    await asyncio.sleep(pause)
            if self._hung_up and linkedid_of(pairs) in self._hung_up:
                continue  # the rest of a call that a Hangup action ended
            self._track(pairs)
            self._broadcast(encode_message(pairs))
            delay = timing.pace if timing is not None else pace
            if delay:
                await asyncio.sleep(delay)
        await self._drain()

    async def generate(
        self,
        *,
        rate: float,
        duration: float,
        scenarios: Sequence[str] = CALL_SCENARIOS,
        timing: Timing = FAST,
        agents: Sequence[str] = (),
    ) -> int:
        """Start `rate` calls per second for `duration` seconds (0: until cancelled); the
        captures' phones ring `agents` instead, the first phone of each call in turn."""
        names = [s for s in scenarios if s != "click-to-call"] or list(scenarios)
        started = 0
        loop = asyncio.get_running_loop()
        begin = loop.time()
        while duration <= 0 or loop.time() - begin < duration:
            literals = agent_literals(agents, started)
            self._spawn(self.play(random.choice(names), literals=literals, timing=timing))
            started += 1
            await asyncio.sleep(max(begin + started / rate - loop.time(), 0))
        return started

    async def listened_to(self) -> None:
        """Wait until a client that takes events has logged in."""
        await self._logged_in.wait()

    async def finished(self) -> None:
        """Wait until every call started so far has been sent whole."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------- internals
    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _broadcast(self, data: bytes) -> None:
        if self.silent:
            return
        self.stats.events += 1
        for session in self._sessions:
            if session.authed and session.events:
                session.writer.write(data)

    async def _drain(self) -> None:
        for session in list(self._sessions):
            with contextlib.suppress(ConnectionError, OSError):
                await session.writer.drain()

    def _track(self, pairs: Pairs) -> None:
        """Keep the channel table CoreShowChannels answers from."""
        fields = dict(pairs)
        name, uid = fields.get("Event"), fields.get("Uniqueid")
        if not uid or not fields.get("Channel") or "Linkedid" not in fields:
            return
        if name == "Hangup":
            self._channels.pop(uid, None)
            return
        if name != "Newchannel" and uid not in self._channels:
            return
        row = self._channels.setdefault(uid, {"Application": "", "ApplicationData": ""})
        for key in _SNAPSHOT:
            if key in fields:
                row[key] = fields[key]
        if name == "Newexten":
            row["Application"] = fields.get("Application", "")
            row["ApplicationData"] = fields.get("AppData", "")
        elif name == "BridgeEnter":
            row["BridgeId"] = fields.get("BridgeUniqueid", "")
        elif name == "BridgeLeave":
            row["BridgeId"] = ""
        row.setdefault("_since", str(time.monotonic()))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer)
        self._sessions.add(session)
        self.stats.connections += 1
        parser = AmiParser(expect_banner=False)
        try:
            writer.write(BANNER)
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for message in parser.feed(data):
                    if not isinstance(message, Action):
                        continue
                    self.received.append(message)
                    session.actions.append(message)
                    if self.silent:
                        continue
                    if not await self._handle(session, message):
                        return
                await writer.drain()
        except (ConnectionError, OSError):
            return
        except asyncio.CancelledError:
            return  # the server is stopping: a handler task must not die cancelled
        finally:
            self._sessions.discard(session)
            writer.close()

    def _reply(self, session: _Session, action: Action, pairs: Pairs) -> None:
        head = pairs[:1]
        if action.action_id is not None:
            head.append(("ActionID", action.action_id))
        session.writer.write(encode_message(head + pairs[1:]))

    async def _handle(self, session: _Session, action: Action) -> bool:
        """Answer one action; False closes the connection."""
        name = action.get("Action").lower()
        if name == "login":
            if action.get("Username") == self.username and action.get("Secret") == self.secret:
                session.authed = True
                session.events = action.get("Events", "on").lower() not in ("off", "no")
                self.stats.logins += 1
                if session.events:
                    self._logged_in.set()
                self._reply(
                    session,
                    action,
                    [("Response", "Success"), ("Message", "Authentication accepted")],
                )
                if session.events:
                    session.writer.write(
                        encode_message(
                            [
                                ("Event", "FullyBooted"),
                                ("Privilege", "system,all"),
                                ("Uptime", "27"),
                                ("LastReload", "27"),
                                ("Status", "Fully Booted"),
                            ]
                        )
                    )
                return True
            self.stats.failed_logins += 1
            self._reply(
                session, action, [("Response", "Error"), ("Message", "Authentication failed")]
            )
            await session.writer.drain()
            await asyncio.sleep(self.bad_login_close_s)  # Asterisk waits ~1 s, no Goodbye
            return False
        if name == "logoff":
            self._reply(
                session, action, [("Response", "Goodbye"), ("Message", "Thanks for all the fish.")]
            )
            await session.writer.drain()
            return False
        if not session.authed:
            self._reply(session, action, [("Response", "Error"), ("Message", "Permission denied")])
            return True
        handler = getattr(self, f"_action_{name}", None)
        if handler is None:
            self._reply(
                session, action, [("Response", "Error"), ("Message", "Invalid/unknown command")]
            )
            return True
        handler(session, action)
        return True

    def _action_ping(self, session: _Session, action: Action) -> None:
        self._reply(
            session,
            action,
            [("Response", "Success"), ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")],
        )

    def _action_command(self, session: _Session, action: Action) -> None:
        if action.get("Command").strip() == "core show version":
            output = VERSION_OUTPUT
            self._reply(
                session,
                action,
                [
                    ("Response", "Success"),
                    ("Message", "Command output follows"),
                    ("Output", output),
                ],
            )
        else:
            self._reply(
                session,
                action,
                [
                    ("Response", "Error"),
                    ("Message", "Command output follows"),
                    ("Output", "No such command"),
                ],
            )

    def _action_coreshowchannels(self, session: _Session, action: Action) -> None:
        self._reply(
            session,
            action,
            [
                ("Response", "Success"),
                ("EventList", "start"),
                ("Message", "Channels will follow"),
            ],
        )
        action_id = [("ActionID", action.action_id)] if action.action_id else []
        rows = list(self._channels.values())
        now = time.monotonic()
        for row in rows:
            seconds = int(now - float(row.get("_since", now)))
            pairs = [("Event", "CoreShowChannel"), *action_id]
            pairs += [(k, v) for k, v in row.items() if not k.startswith("_") and k != "BridgeId"]
            pairs += [
                ("Duration", f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"),
                ("BridgeId", row.get("BridgeId", "")),
            ]
            session.writer.write(encode_message(pairs))
        session.writer.write(
            encode_message(
                [
                    ("Event", "CoreShowChannelsComplete"),
                    *action_id,
                    ("EventList", "Complete"),
                    ("ListItems", str(len(rows))),
                ]
            )
        )

    def _find_channel(self, name: str) -> dict[str, str] | None:
        return next((row for row in self._channels.values() if row.get("Channel") == name), None)

    def _action_redirect(self, session: _Session, action: Action) -> None:
        if self._find_channel(action.get("Channel")) is None:
            self._reply(
                session,
                action,
                [
                    ("Response", "Error"),
                    ("Message", "Channel does not exist: " + action.get("Channel")),
                ],
            )
            return
        self._reply(session, action, [("Response", "Success"), ("Message", "Redirect successful")])

    def _action_hangup(self, session: _Session, action: Action) -> None:
        row = self._find_channel(action.get("Channel"))
        if row is None:
            self._reply(session, action, [("Response", "Error"), ("Message", "No such channel")])
            return
        self._reply(session, action, [("Response", "Success"), ("Message", "Channel Hungup")])
        # The whole call goes, as when the dialplan's bridge breaks: every leg hangs up
        # and the rest of its replay is not sent.
        linkedid = row["Linkedid"]
        cause = action.get("Cause") or "16"
        legs = [r for r in self._channels.values() if r.get("Linkedid") == linkedid]
        hangups = [
            [
                ("Event", "Hangup"),
                ("Privilege", "call,all"),
                *((k, leg[k]) for k in _SNAPSHOT if k in leg),
                ("Cause", cause),
                ("Cause-txt", "Normal Clearing"),
            ]
            for leg in legs
        ]
        for pairs in hangups:
            self._track(pairs)
            self._broadcast(encode_message(pairs))
        self._hung_up.add(linkedid)

    def _action_originate(self, session: _Session, action: Action) -> None:
        channel = action.get("Channel")
        tech, _, agent = channel.partition("/")
        number = action.get("Exten").lstrip("+")
        if not tech or not agent or not number:
            self._reply(
                session, action, [("Response", "Error"), ("Message", "Channel not specified")]
            )
            return
        variables = dict(v.partition("=")[::2] for v in action.get_all("Variable"))
        action_id = action.action_id or f"orig-{uuid.uuid4().hex[:8]}"
        self._reply(
            session, action, [("Response", "Success"), ("Message", "Originate successfully queued")]
        )
        literals = {
            _C2C["agent"]: agent,
            _C2C["number"]: number,
            _C2C["crm"]: variables.get("CRM_CALL_ID", _C2C["crm"]),
            _C2C["action"]: action_id,
        }
        events = prepare("click-to-call", literals=literals, directory=self.captures)
        reason = self.originate_failures.get(agent)
        if reason is not None:
            self._spawn(self._originate_failure(events, channel, action, action_id, reason))
            return
        # The Originate's other channel variables, set on the agent's channel like CRM_CALL_ID.
        at = next(i for i, e in enumerate(events) if ("Variable", "CRM_CALL_ID") in e)
        for name, value in variables.items():
            if name != "CRM_CALL_ID":
                at += 1
                events.insert(
                    at,
                    [
                        (k, name if k == "Variable" else value if k == "Value" else v)
                        for k, v in events[at - 1]
                    ],
                )
        self.stats.calls += 1
        self._spawn(self.emit(events, pace=self.originate_pace))

    async def _originate_failure(
        self, replay: list[Pairs], channel: str, action: Action, action_id: str, reason: int
    ) -> None:
        """The agent's phone never answers. Busy (5) and no answer (3) ring a channel first
        (built from the click-to-call replay's own first events); an endpoint that is not
        registered (0) or congestion (8) gets no channel at all."""
        await asyncio.sleep(self.originate_pace)
        events: list[Pairs] = []
        uniqueid = "<null>"
        if reason in _ORIGINATE_HANGUP:
            status, cause, text = _ORIGINATE_HANGUP[reason]
            newchannel = next(e for e in replay if ("Event", "Newchannel") in e)
            uniqueid = dict(newchannel)["Uniqueid"]
            crm_var = next(e for e in replay if ("Variable", "CRM_CALL_ID") in e)
            dial_begin, dial_end = (
                next(e for e in replay if ("Event", name) in e) for name in ("DialBegin", "DialEnd")
            )
            dial_end = [(k, status if k == "DialStatus" else v) for k, v in dial_end]
            hangup = [("Event", "Hangup"), *newchannel[1:], ("Cause", cause), ("Cause-txt", text)]
            events = [newchannel, crm_var, dial_begin, dial_end, hangup]
        events.append(
            [
                ("Event", "OriginateResponse"),
                ("Privilege", "call,all"),
                ("ActionID", action_id),
                ("Response", "Failure"),
                ("Channel", channel),
                ("Context", action.get("Context")),
                ("Exten", action.get("Exten")),
                ("Reason", str(reason)),
                ("Uniqueid", uniqueid),
                ("CallerIDNum", "<unknown>"),
                ("CallerIDName", "<unknown>"),
            ]
        )
        self.stats.calls += 1
        await self.emit(events, pace=self.originate_pace)


async def serve(
    *,
    port: int,
    username: str,
    secret: str,
    scenarios: Sequence[str],
    rate: float,
    duration: float,
    timing: Timing = HUMAN,
    agents: Sequence[str] = (),
    host: str = "127.0.0.1",
) -> None:
    """`callcard pbx-sim`: serve AMI, and generate calls when a rate is given."""
    simulator = AmiSimulator(host=host, port=port, username=username, secret=secret)
    await simulator.start()
    print(f"AMI simulator on {simulator.url}", flush=True)
    try:
        if rate > 0:
            await simulator.listened_to()  # a demo's first call is for someone to see
            started = await simulator.generate(
                rate=rate, duration=duration, scenarios=scenarios, timing=timing, agents=agents
            )
            await simulator.finished()  # let the last calls finish
            print(f"{started} calls, {simulator.stats.events} events sent", flush=True)
        elif duration > 0:
            await asyncio.sleep(duration)
        else:
            await asyncio.Event().wait()
    finally:
        await simulator.stop()
