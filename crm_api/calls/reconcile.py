"""Nothing stays live forever: calls the journal thinks are live while the PBX does not.

Two ways a call's end can be missed: it ended while no adapter was connected (the link was
down, `callcard telephony` was restarted), or its events were lost. So, after every AMI
(re)connect, a call the journal has live that the PBX did not list (and that the
translator does not follow) is ended, at the best time known: when the link was last
heard from, or the call's own latest time. And a sweeper ends any call live for longer
than any real call lasts. Both go through the call-event stream like the PBX's own events,
so the journal, the missed-call follow-up and the operators' sockets see one ordinary end
(an end that arrives after the real one changes nothing).

The journal holds every PBX's calls, each under its PBX's name (CALLCARD_PBX_NAME): a PBX's
process ends only calls of that name. Processes that share a name (an AMI link and a SIP
bridge named alike) tell their calls apart by what each wrote down as its own
(`CarriedCalls`, a set per link in Redis): after a resync, the AMI side leaves alone what
the other one carries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.calls.models import Call
from crm_api.platform.db.base import utcnow
from crm_api.platform.realtime.outage import Outage, is_outage
from telephony import events as ev

log = logging.getLogger(__name__)
LIVE_STATES = ("originating", "ringing", "answered")
GONE_AT_RECONNECT = "gone_at_reconnect"
NO_EVENTS = "no_events"
HEARD_EVERY_S = 1.0
CARRIED_KEY = "callcard:telephony:calls:{link}"


@dataclass(frozen=True, slots=True)
class LiveCall:
    pbx_call_id: str
    direction: str
    started_at: datetime
    answered_at: datetime | None
    caller: str | None
    callee: str | None
    agents: tuple[str, ...]
    answered_by: str | None

    @property
    def latest(self) -> datetime:
        return self.answered_at or self.started_at


async def live_in_journal(
    sessions: async_sessionmaker[AsyncSession],
    *,
    pbx: str,
    started_before: datetime,
    id_prefix: str = "",
) -> list[LiveCall]:
    """Calls of the PBX named `pbx` live in the journal that started before
    `started_before`; with `id_prefix`, only those whose PBX call id starts with it (one
    SIP bridge's)."""
    async with sessions() as session:
        rows = await session.execute(
            select(
                Call.pbx_call_id,
                Call.direction,
                Call.started_at,
                Call.answered_at,
                Call.caller,
                Call.callee,
                Call.agents,
                Call.answered_by,
            ).where(
                Call.state.in_(LIVE_STATES),
                Call.pbx == pbx,
                Call.pbx_call_id.is_not(None),
                Call.started_at < started_before,
                Call.pbx_call_id.startswith(id_prefix, autoescape=True),
            )
        )
        return [
            LiveCall(
                str(r[0]),
                r[1],
                _aware(r[2]),
                _aware(r[3]) if r[3] else None,
                r[4],
                r[5],
                tuple(r[6] or ()),
                r[7],
            )
            for r in rows
        ]


def _aware(at: datetime) -> datetime:
    # SQLite gives naive datetimes back; every time here is UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def ended(call: LiveCall, *, at: datetime, reason: str) -> ev.CallEnded:
    """The end of a call whose real end was missed, at `at` or its own latest time."""
    end = max(at, call.latest)
    answered = call.answered_at is not None
    ring = ((call.answered_at or end) - call.started_at).total_seconds()
    talk = (end - call.answered_at).total_seconds() if call.answered_at else 0.0
    # An unanswered call whose outcome nobody saw gets the follow-up a missed one gets.
    disposition = ev.Disposition.ANSWERED if answered else ev.Disposition.MISSED
    return ev.CallEnded(
        call_id=call.pbx_call_id,
        at=end,
        direction=ev.Direction(call.direction),
        disposition=disposition,
        cause=0,
        cause_text="ended by Callcard: " + reason,
        caller=call.caller,
        callee=call.callee,
        ring_s=max(ring, 0.0),
        talk_s=max(talk, 0.0),
        agents=call.agents,
        answered_by=call.answered_by,
        reason=reason,
    )


class LastHeard:
    """When the PBX was last heard from, kept in Redis: the next telephony process (after
    a crash or a takeover) ends the calls that ended meanwhile at that time, not at their
    answer. Best effort: without Redis, or with Redis away, a call's own times are used."""

    def __init__(self, redis: Redis | None, pbx: str, heard: Callable[[], datetime | None]):
        self._redis = redis
        self._key = f"callcard:telephony:last-heard:{pbx}"
        self._heard = heard

    async def before(self) -> datetime | None:
        if self._redis is None:
            return None
        try:
            raw: bytes | str | None = await self._redis.get(self._key)
            if not raw:
                return None
            return datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else raw)
        except (RedisError, OSError, ValueError):
            return None

    async def keep(self, stop: asyncio.Event) -> None:
        written = None
        while self._redis is not None and await _pause(stop, HEARD_EVERY_S):
            heard = self._heard()
            if heard is not None and heard != written:
                with contextlib.suppress(RedisError, OSError):
                    await self._redis.set(self._key, heard.isoformat(), ex=7 * 86400)
                    written = heard


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Waits `seconds` or until `stop`: True while not stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return not stop.is_set()


class CarriedCalls:
    """The calls one link (an AMI address, a SIP bridge) carries, as a set in Redis of
    "<pbx name>:<call id>": noted as the link emits them (started or routed: in; ended:
    out) and written each second, never in the link's way. Only what another link wrote
    down is spared: a call of this link's that its dead process had not written yet is
    still ended by the next one."""

    def __init__(self, redis: Redis, link: str, *, pbx: str) -> None:
        self._redis = redis
        self._key = CARRIED_KEY.format(link=link)
        self._pbx = pbx
        self._started: set[str] = set()
        self._ended: set[str] = set()

    def member(self, call_id: str) -> str:
        """A call of this link's PBX as the sets hold it: another PBX may reuse its id."""
        return f"{self._pbx}:{call_id}"

    def note(self, event: ev.CallEvent) -> None:
        if isinstance(event, ev.CallStarted | ev.CallRouted):
            self._started.add(self.member(event.call_id))
            self._ended.discard(self.member(event.call_id))
        elif isinstance(event, ev.CallEnded):
            self._ended.add(self.member(event.call_id))
            self._started.discard(self.member(event.call_id))

    async def write(self) -> None:
        """What was noted since the last write; kept for the next one if Redis is away."""
        started, ended = self._started, self._ended
        if not started and not ended:
            return
        self._started, self._ended = set(), set()
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                if started:
                    pipe.sadd(self._key, *started)
                if ended:
                    pipe.srem(self._key, *ended)
                await pipe.execute()
        except (RedisError, OSError):
            self._started |= started - self._ended
            self._ended |= ended - self._started

    async def keep(self, stop: asyncio.Event) -> None:
        while await _pause(stop, HEARD_EVERY_S):
            await self.write()

    async def elsewhere(self, call_ids: list[str]) -> set[str]:
        """Those of this PBX's `call_ids` another link carries; none known while Redis is
        away."""
        found: set[str] = set()
        members = [self.member(c) for c in call_ids]
        try:
            async for raw in self._redis.scan_iter(match=CARRIED_KEY.format(link="*")):
                key = raw.decode() if isinstance(raw, bytes) else str(raw)
                if key != self._key:
                    carried = await self._redis.smismember(key, members)
                    found.update(c for c, yes in zip(call_ids, carried, strict=True) if yes)
        except (RedisError, OSError):
            return set()
        return found


class Reconciler:
    """Runs beside one PBX link (the AMI adapter of `callcard telephony`, the pool of
    `callcard sip`), over the calls of its PBX."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        emit: Callable[[list[ev.CallEvent]], None],
        followed: Callable[[], Collection[str]],
        *,
        pbx: str,
        id_prefix: str = "",
        last_heard: LastHeard,
        carried: CarriedCalls | None,
        max_call_s: float,
        sweep_every_s: float,
    ) -> None:
        """`emit` queues events behind the adapter's own; `followed` are the calls the
        adapter's translator follows now (it ends those itself); `pbx`: the name its
        calls are under (CALLCARD_PBX_NAME), and `id_prefix` how their ids start (a SIP
        bridge's); `carried`, with Redis: this link's calls, and where the other links'
        are (without, there is one link)."""
        self._sessions = sessions
        self._pbx = pbx
        self._id_prefix = id_prefix
        self._emit = emit
        self._followed = followed
        self._last_heard = last_heard
        self._carried = carried
        self._heard_before: datetime | None = None  # by the process before this one
        self._max_call = timedelta(seconds=max_call_s)
        self._sweep_every_s = sweep_every_s
        self._outage = Outage("call reconciliation: the database", log)
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    async def after_resync(self, listed_at: datetime, last_heard: datetime | None) -> None:
        """The PBX listed its live calls at `listed_at`; before that the link was last
        heard from at `last_heard` (None: this process was not connected before)."""
        last_heard = last_heard or self._heard_before
        while True:
            try:
                live = await live_in_journal(
                    self._sessions,
                    pbx=self._pbx,
                    started_before=listed_at,
                    id_prefix=self._id_prefix,
                )
                self._outage.ok()
                break
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self._outage.failed(exc)
                await asyncio.sleep(1.0)
        followed = set(self._followed())
        gone = [c for c in live if c.pbx_call_id not in followed]
        if gone and self._carried is not None:
            others = await self._carried.elsewhere([c.pbx_call_id for c in gone])
            gone = [c for c in gone if c.pbx_call_id not in others]
        if not gone:
            return
        log.warning("%d call(s) live in the journal are gone from the PBX; ending them", len(gone))
        self._emit([ended(c, at=last_heard or c.latest, reason=GONE_AT_RECONNECT) for c in gone])

    async def sweep(self, now: datetime) -> int:
        stale = await live_in_journal(
            self._sessions,
            pbx=self._pbx,
            started_before=now - self._max_call,
            id_prefix=self._id_prefix,
        )
        if stale:
            log.warning("%d call(s) live for over %s with no end; ending them", len(stale),
                        self._max_call)  # fmt: skip
            self._emit([ended(c, at=c.latest, reason=NO_EVENTS) for c in stale])
        return len(stale)

    async def start(self) -> None:
        """Before the PBX link starts: its first resync needs what the last process heard."""
        self._stop.clear()
        self._heard_before = await self._last_heard.before()
        self._tasks = [
            asyncio.create_task(self._sweeper(), name="call-sweeper"),
            asyncio.create_task(self._last_heard.keep(self._stop), name="pbx-last-heard"),
        ]
        if self._carried is not None:
            self._tasks.append(
                asyncio.create_task(self._carried.keep(self._stop), name="pbx-calls")
            )

    async def stop(self) -> None:
        # Every task ends at `_stop`; none is cancelled: a cancel that the Redis client
        # swallowed mid-write left a keeper looping and the process deaf to SIGTERM.
        self._stop.set()
        await asyncio.gather(*self._tasks)
        if self._carried is not None:
            await self._carried.write()  # the last notes, for the next process
        self._tasks = []

    async def _sweeper(self) -> None:
        while not self._stop.is_set():
            try:
                await self.sweep(utcnow())
                self._outage.ok()
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("sweeping stale calls failed")
                else:
                    self._outage.failed(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._sweep_every_s)
