"""The routing policy's state and its answer to the PBX: the round-robin position and the
extensions already offered for a call live in Redis (or the database without Redis), so
every API worker and a restarted one continue the same rotation, and a second ask for one
call moves on to the next manager. The on-duty roster is cached per worker for a few
seconds. The decision itself is routing.py's, pure."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy import bindparam, delete, func, literal, or_, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_api.accounts.models import Role, User
from crm_api.calls.models import Call
from crm_api.clients import phones
from crm_api.clients.models import Client
from crm_api.clients.service import whose_number
from crm_api.platform.db.base import utcnow
from crm_api.platform.db.direct import Queryable, connect_direct, core_rows
from crm_api.schedules import service as schedules
from crm_api.schedules.models import RouteAsk, RouteCounter
from crm_api.schedules.routing import (
    Agent,
    RouteDecision,
    decide,
    fallback_decision,
    free_candidates,
)

ROUTE_TURN_KEY = "callcard:route:turn"
ROUTE_CALL_KEY = "callcard:route:call:"  # + "<pbx>:<call id>": two PBXs may reuse an id
ROUTE_CALL_TTL = 3600  # a call's offers are remembered this long (seconds)
PRUNE_EVERY_S = 300.0  # without Redis, offers past ROUTE_CALL_TTL are deleted this often
LIVE_CALL_HORIZON = timedelta(hours=12)  # an unended call older than this is stale data
ROUTABLE_ROLES = (Role.MANAGER, Role.SUPERVISOR, Role.OPERATOR)
ROSTER_WINDOW = timedelta(hours=1)  # a cached schedule serves a `now` this close to its read

# One round trip: draw the turn only when the rotation is needed, pick from it, and
# remember the offer (the first answer to a (call, attempt) stays, a concurrent ask gets it).
_SETTLE = """
local pick = ARGV[3]
if #ARGV > 3 then
  local turn = redis.call('INCR', KEYS[2])
  pick = ARGV[4 + (turn % (#ARGV - 3))]
end
if redis.call('HSETNX', KEYS[1], ARGV[1], pick) == 0 then
  pick = redis.call('HGET', KEYS[1], ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return pick
"""


class _RedisState:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def asked(self, pbx: str, call_id: str) -> dict[int, int | None]:
        raw = await self.redis.hgetall(_call_key(pbx, call_id))
        return {int(k): _user_or_none(v) for k, v in raw.items()}

    async def settle(
        self, pbx: str, call_id: str, attempt: int, chosen: int | None, rotation: Sequence[int]
    ) -> int | None:
        picked = await self.redis.eval(  # type: ignore[misc]
            _SETTLE,
            2,
            _call_key(pbx, call_id),
            ROUTE_TURN_KEY,
            str(attempt),
            str(ROUTE_CALL_TTL),
            "" if chosen is None else str(chosen),
            *map(str, rotation),
        )
        return _user_or_none(picked)


def _call_key(pbx: str, call_id: str) -> str:
    # PBX names have no colon (Settings). A key of the form before PBX names (no `<pbx>:`),
    # left by a rolling upgrade, expires unread within ROUTE_CALL_TTL.
    return f"{ROUTE_CALL_KEY}{pbx}:{call_id}"


def _user_or_none(raw: bytes | str) -> int | None:
    return int(raw) if raw not in (b"", "") else None


_pruned: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], float] = (
    weakref.WeakKeyDictionary()
)


class _DbState:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def asked(self, pbx: str, call_id: str) -> dict[int, int | None]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(RouteAsk.attempt, RouteAsk.user_id).where(
                    RouteAsk.pbx == pbx, RouteAsk.call_id == call_id
                )
            )
            return {a: u for a, u in rows}

    async def settle(
        self, pbx: str, call_id: str, attempt: int, chosen: int | None, rotation: Sequence[int]
    ) -> int | None:
        if rotation:
            chosen = rotation[await self._turn() % len(rotation)]
        async with self.sessions() as session:
            if self._prune_due():
                # Forgotten as Redis forgets them (ROUTE_CALL_TTL): the table stays small.
                expired = utcnow() - timedelta(seconds=ROUTE_CALL_TTL)
                await session.execute(delete(RouteAsk).where(RouteAsk.asked_at < expired))
            session.add(RouteAsk(pbx=pbx, call_id=call_id, attempt=attempt, user_id=chosen))
            try:
                await session.commit()
            except IntegrityError:  # the same ask answered twice concurrently: first one stays
                await session.rollback()
                return (await self.asked(pbx, call_id)).get(attempt)
        return chosen

    def _prune_due(self) -> bool:
        """Once per PRUNE_EVERY_S per database, in this process (the first offer after a
        start prunes)."""
        now = time.monotonic()
        if now - _pruned.get(self.sessions, -PRUNE_EVERY_S) < PRUNE_EVERY_S:
            return False
        _pruned[self.sessions] = now
        return True

    async def _turn(self) -> int:
        async with self.sessions() as session:
            value = await session.scalar(
                update(RouteCounter)
                .where(RouteCounter.name == "turn")
                .values(value=RouteCounter.value + 1)
                .returning(RouteCounter.value)
            )
            if value is None:
                session.add(RouteCounter(name="turn", value=1))
                try:
                    await session.commit()
                    return 1
                except IntegrityError:  # another worker created it first
                    await session.rollback()
                    return await self._turn()
            await session.commit()
            return int(value)


# --- the entry point -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Roster:
    """The schedule and the routable users, as one worker last read them."""

    read_at: float  # monotonic
    around: datetime  # the `now` it was read for
    duties: list[schedules.Duty]  # laid out around `around`, sorted by start
    extensions: dict[int, str]

    def on_duty(self, at: datetime) -> list[int]:
        """Like schedules.on_duty, from the stretches laid out once per read."""
        order: list[int] = []
        for d in self.duties:
            on = d.starts_at <= at < d.ends_at and d.user_id in self.extensions
            if on and d.user_id not in order:
                order.append(d.user_id)
        return order


# Per session factory (one per worker and database): a schedule change reaches routing
# within ROSTER_TTL seconds, and a routing answer costs two small queries, not five.
_rosters: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], _Roster] = (
    weakref.WeakKeyDictionary()
)
ROSTER_TTL = 5.0


def forget_roster(sessions: async_sessionmaker[AsyncSession]) -> None:
    """After a schedule or user change on this worker: the next call reads it afresh
    (other workers within ROSTER_TTL)."""
    _rosters.pop(sessions, None)


async def _roster(
    sessions: async_sessionmaker[AsyncSession], now: datetime, tz: ZoneInfo
) -> _Roster:
    cached = _rosters.get(sessions)
    if (
        cached is not None
        and time.monotonic() - cached.read_at < ROSTER_TTL
        and abs(now - cached.around) < ROSTER_WINDOW
    ):
        return cached
    async with sessions() as session:
        shifts, absences = await schedules.load(
            session, now - 2 * schedules.DAY, now + schedules.DAY
        )
        users = await session.execute(
            select(User.id, User.extension).where(
                User.is_active.is_(True), User.extension.is_not(None), User.role.in_(ROUTABLE_ROLES)
            )
        )
        extensions = {uid: ext for uid, ext in users if ext}
    # Laying the weekly pattern out is the costly part: once per read, not per call.
    window = schedules.duties(shifts, absences, now - 2 * schedules.DAY, now + schedules.DAY, tz)
    roster = _Roster(time.monotonic(), now, window, extensions)
    _rosters[sessions] = roster
    return roster


# Who of the on-duty users is on a live call (not the one being routed), and the caller's
# manager: one round trip, built once and run as a prepared statement.
_BUSY = select(literal("busy"), Call.user_id).where(
    Call.user_id.in_(bindparam("on_duty", expanding=True)),
    Call.ended_at.is_(None),
    Call.started_at > bindparam("since"),
    or_(
        Call.pbx != bindparam("pbx"),
        func.coalesce(Call.pbx_call_id, "") != bindparam("call_id"),
    ),
)
_BUSY_AND_OWNER = union_all(
    _BUSY, select(literal("owner"), Client.manager_id).where(whose_number(bindparam("e164")))
)


async def agents_and_owner(
    sessions: async_sessionmaker[AsyncSession],
    db: Queryable,
    *,
    now: datetime,
    tz: ZoneInfo,
    pbx: str,
    call_id: str,
    caller: str,
    region: str,
    busy_extensions: frozenset[str] = frozenset(),
) -> tuple[list[Agent], int | None]:
    """On-duty users with an extension in schedule order, each with its busy flag, and
    the caller's responsible manager: one query on `db` (the schedule comes from the
    roster). The call being routed is `pbx`'s `call_id`: another PBX's call of that id is
    not it."""
    roster = await _roster(sessions, now, tz)
    order = roster.on_duty(now)
    if not order:
        return [], None
    params = {"on_duty": order, "since": now - LIVE_CALL_HORIZON, "pbx": pbx, "call_id": call_id}
    e164 = phones.try_normalize(caller, region)  # withheld or garbage: no owner to prefer
    if e164 is None:
        rows = await core_rows(db, _BUSY, params)
    else:
        rows = await core_rows(db, _BUSY_AND_OWNER, {**params, "e164": e164})
    busy, owner = set(), None
    for what, uid in rows:
        if what == "owner":
            owner = uid
        else:
            busy.add(uid)
    return [
        Agent(uid, ext, uid in busy or ext in busy_extensions)
        for uid, ext in ((uid, roster.extensions[uid]) for uid in order)
    ], owner


async def choose_extension(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis | None,
    *,
    caller: str,
    did: str | None,
    pbx: str,
    call_id: str,
    now: datetime,
    attempt: int | None = None,
    tz: ZoneInfo,
    region: str,
    fallback: str,
    busy_extensions: frozenset[str] = frozenset(),
) -> RouteDecision:
    """Answers the FastAGI server for one ask. The same (call, attempt) asked again gets
    the same answer; a new attempt of the call gets a manager not yet offered. A call is
    `pbx`'s `call_id`: another PBX's call of that id has its own attempts and offers. A phone in
    `busy_extensions` (ringing or talking on the PBX, or just offered a call) is busy."""
    state: _RedisState | _DbState = _RedisState(redis) if redis is not None else _DbState(sessions)

    async def agents() -> tuple[list[Agent], int | None]:
        # Reads only: no transaction (two round trips), no session on PostgreSQL.
        async with connect_direct(engine, sessions) as db:
            return await agents_and_owner(
                sessions,
                db,
                now=now,
                tz=tz,
                pbx=pbx,
                call_id=call_id,
                caller=caller,
                region=region,
                busy_extensions=busy_extensions,
            )

    # The offers so far and the roster are independent reads: wait for both at once.
    asked, (on_duty, owner) = await asyncio.gather(state.asked(pbx, call_id), agents())
    if attempt is not None and attempt in asked:
        return await _replay(sessions, asked[attempt], fallback)
    attempt = attempt if attempt is not None else max(asked, default=0) + 1
    tried = frozenset(u for u in asked.values() if u is not None)
    decision = decide(on_duty, owner_id=owner, tried=tried, turn=None, fallback=fallback)
    rotation = [] if decision is not None else [a.user_id for a in free_candidates(on_duty, tried)]
    chosen = await state.settle(
        pbx, call_id, attempt, None if decision is None else decision.user_id, rotation
    )
    if decision is None:  # the rotation's pick
        agent = next((a for a in on_duty if a.user_id == chosen), None)
        if agent is not None:
            return RouteDecision(agent.extension, None, chosen, "round_robin")
    elif decision.user_id == chosen:
        return decision
    return await _replay(sessions, chosen, fallback)  # another ask of this attempt came first


async def _replay(
    sessions: async_sessionmaker[AsyncSession], user_id: int | None, fallback: str
) -> RouteDecision:
    if user_id is None:
        return fallback_decision(fallback)
    async with sessions() as session:
        ext = await session.scalar(select(User.extension).where(User.id == user_id))
    if ext is None:
        return fallback_decision(fallback)
    return RouteDecision(ext, None, user_id, "repeat")
