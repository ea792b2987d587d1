"""The routing policy on real storage: shifts, owners and busy flags, midnight, repeated
asks for one call, round robin shared by two workers and continued after a restart."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor, make_user
from support.server import RunningApi

from crm_api.accounts.models import Role
from crm_api.calls.models import Call
from crm_api.clients.models import Client, ClientKind, ClientPhone
from crm_api.platform.db.base import utcnow
from crm_api.platform.db.session import make_engine, make_sessionmaker
from crm_api.platform.settings import Settings
from crm_api.schedules import service as schedules
from crm_api.schedules.models import RouteAsk
from crm_api.schedules.routing import RouteDecision
from crm_api.schedules.routing_state import ROUTE_CALL_TTL, choose_extension
from telephony.ami.devices import DeviceStates

MSK = ZoneInfo("Europe/Moscow")
OWNED = "+79160000002"  # a client of the second manager
STRANGER = "+79169999999"


def msk(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=MSK).astimezone(UTC)  # 23rd: a Monday


class Worker:
    """What one API worker holds: its own engine and Redis connection."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings.database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.redis = Redis.from_url(settings.redis_url) if settings.redis_url else None

    async def ask(
        self,
        caller: str,
        call_id: str,
        now: datetime,
        attempt: int | None = None,
        busy: frozenset[str] = frozenset(),
        pbx: str = "pbx",
    ) -> RouteDecision:
        return await choose_extension(
            self.engine,
            self.sessions,
            self.redis,
            caller=caller,
            did="74950000000",
            pbx=pbx,
            call_id=call_id,
            now=now,
            attempt=attempt,
            tz=MSK,
            region="RU",
            fallback="queue:sales",
            busy_extensions=busy,
        )

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


@pytest.fixture
async def team(db: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with db() as session:
        m1 = (await make_user(session, Role.MANAGER, extension="201")).user
        m2 = (await make_user(session, Role.MANAGER, extension="202")).user
        m3 = (await make_user(session, Role.MANAGER, extension="203")).user
        await session.flush()
        await schedules.add_shift(session, m1.id, 0, time(9), time(18), False)
        await schedules.add_shift(session, m2.id, 0, time(12), time(20), False)
        await schedules.add_shift(session, m3.id, 6, time(22), time(6), True)  # Sun night
        client = Client(kind=ClientKind.PERSON, name="Owned", search_name="owned", manager_id=m2.id)
        session.add(client)
        await session.flush()
        session.add(ClientPhone(client_id=client.id, e164=OWNED, digits=OWNED[1:], raw=OWNED))
        await session.commit()
        return {"m1": m1.id, "m2": m2.id, "m3": m3.id}


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    w = Worker(settings)
    yield w
    await w.close()


async def test_owner_then_the_next_then_the_fallback(team: dict[str, int], worker: Worker) -> None:
    now = msk(23, 13)
    first = await worker.ask(OWNED, "c1", now, attempt=1)
    assert (first.target, first.reason) == ("202", "owner")
    second = await worker.ask(OWNED, "c1", now, attempt=2)
    assert (second.target, second.reason) == ("201", "round_robin")
    third = await worker.ask(OWNED, "c1", now, attempt=3)
    assert (third.target, third.reason) == ("queue:sales", "fallback")
    again = await worker.ask(OWNED, "c1", now, attempt=1)  # the PBX repeated its ask
    assert again.target == "202"
    # Without attempt numbers each ask is the next attempt.
    assert (await worker.ask(OWNED, "c2", now)).target == "202"
    assert (await worker.ask(OWNED, "c2", now)).target == "201"


async def test_a_phone_ringing_or_just_offered_is_busy(
    team: dict[str, int], worker: Worker
) -> None:
    """A burst: one phone is offered one call at a time, whatever the CRM's own rows say."""
    now = msk(23, 13)  # 201 and 202 on duty; 202 owns OWNED
    devices = DeviceStates()
    answers = []
    for n in range(3):
        decision = await worker.ask(STRANGER, f"burst{n}", now, busy=devices.busy())
        if decision.extension is not None:
            devices.offered(decision.extension)
        answers.append(decision.target)
    assert sorted(answers[:2]) == ["201", "202"] and answers[2] == "queue:sales"
    # The owner's phone rings on the PBX (another call): not offered to its own client.
    devices.set_state("202", "RINGING")
    assert (await worker.ask(OWNED, "own", now, busy=frozenset({"202"}))).target != "202"


@pytest.mark.parametrize(
    ("when", "caller", "expected"),
    [
        (msk(23, 10), OWNED, {"201"}),  # owner not on duty yet: the one who is
        (msk(23, 19), STRANGER, {"202"}),
        (msk(23, 21), OWNED, {"queue:sales"}),  # nobody on duty
        (msk(23, 1), STRANGER, {"203"}),  # Sunday's night shift, past midnight
        (msk(22, 23), OWNED, {"203"}),  # ...and before it
        (msk(23, 6), STRANGER, {"queue:sales"}),  # the night shift is over
        (msk(23, 13), STRANGER, {"201", "202"}),
    ],
)
async def test_shift_table(
    team: dict[str, int], worker: Worker, when: datetime, caller: str, expected: set[str]
) -> None:
    got = await worker.ask(caller, f"t-{when.isoformat()}", when)
    assert got.target in expected


async def test_busy_owner_is_skipped_and_vacation_counts(
    team: dict[str, int], worker: Worker, db: async_sessionmaker[AsyncSession]
) -> None:
    now = msk(23, 13)
    async with db() as session:
        session.add(
            Call(
                pbx="pbx",
                pbx_call_id="live",
                user_id=team["m2"],
                direction="inbound",
                state="answered",
                started_at=msk(23, 12, 55),
            )
        )
        await schedules.add_exception(
            session, team["m1"], schedules.ExceptionKind.SICK, msk(23, 0), msk(24, 0), None, None
        )
        await session.commit()
    got = await worker.ask(OWNED, "b1", now)
    assert got.target == "queue:sales"  # owner busy, the other one sick
    async with db() as session:
        call = await session.get(Call, 1)
        assert call is not None
        call.ended_at = msk(23, 13)
        await session.commit()
    assert (await worker.ask(OWNED, "b2", now)).target == "202"
    # The call being routed does not make its own agent busy.
    async with db() as session:
        session.add(
            Call(
                pbx="pbx",
                pbx_call_id="b3",
                user_id=team["m2"],
                direction="inbound",
                state="ringing",
                started_at=now,
            )
        )
        await session.commit()
    assert (await worker.ask(OWNED, "b3", now)).target == "202"


async def test_another_pbxs_live_call_of_the_same_id_keeps_its_agent_busy(
    team: dict[str, int], worker: Worker, db: async_sessionmaker[AsyncSession]
) -> None:
    """Two PBXs reuse a Linkedid: the owner talks on office-b's call "d1" while office-a
    routes its own "d1". That is another call, so the owner is busy."""
    now = msk(23, 13)  # 201 and 202 on duty; 202 owns OWNED
    async with db() as session:
        session.add(
            Call(
                pbx="office-b",
                pbx_call_id="d1",
                user_id=team["m2"],
                direction="inbound",
                state="answered",
                started_at=msk(23, 12, 58),
            )
        )
        await session.commit()
    assert (await worker.ask(OWNED, "d1", now, pbx="office-a")).target == "201"


async def test_two_pbxs_reusing_a_call_id_get_their_own_offers(
    team: dict[str, int], settings: Settings
) -> None:
    """Asterisk Uniqueids repeat across servers: office-b's call of office-a's id is
    another call, with its own attempts and offers (in Redis, and in the database)."""
    now = msk(23, 13)  # 201 and 202 on duty; 202 owns OWNED
    stores = [Worker(settings)]
    if settings.redis_url:
        stores.append(Worker(settings.model_copy(update={"redis_url": None})))
    try:
        for w in stores:
            a = await w.ask(OWNED, "1733150000.12", now, pbx="office-a")
            assert (a.target, a.reason) == ("202", "owner")
            # Its first ask, not office-a's second: the owner again, not the next one.
            b = await w.ask(OWNED, "1733150000.12", now, pbx="office-b")
            assert (b.target, b.reason) == ("202", "owner")
            assert (await w.ask(OWNED, "1733150000.12", now, pbx="office-a")).target == "201"
            b2 = await w.ask(OWNED, "1733150000.12", now, attempt=2, pbx="office-b")
            assert (b2.target, b2.reason) == ("201", "round_robin")
            again = await w.ask(OWNED, "1733150000.12", now, attempt=1, pbx="office-b")
            assert (again.target, again.reason) == ("202", "repeat")
    finally:
        for w in stores:
            await w.close()


async def test_without_redis_offers_older_than_their_ttl_are_deleted(
    team: dict[str, int], settings: Settings, db: async_sessionmaker[AsyncSession]
) -> None:
    """The database keeps a call's offers as long as Redis would (ROUTE_CALL_TTL), then
    forgets them: a long-running office without Redis does not grow route_asks forever."""
    now = msk(23, 13)
    worker = Worker(settings.model_copy(update={"redis_url": None}))
    try:
        assert (await worker.ask(OWNED, "old-call", now)).target == "202"
        assert (await worker.ask(OWNED, "recent-call", now)).target == "202"
        async with db() as session:
            await session.execute(
                update(RouteAsk)
                .where(RouteAsk.call_id == "old-call")
                .values(asked_at=utcnow() - timedelta(seconds=ROUTE_CALL_TTL + 60))
            )
            await session.commit()
    finally:
        await worker.close()
    restarted = Worker(settings.model_copy(update={"redis_url": None}))
    try:
        await restarted.ask(STRANGER, "another-call", now)
    finally:
        await restarted.close()
    async with db() as session:
        kept = await session.scalars(select(RouteAsk.call_id).order_by(RouteAsk.call_id))
        assert list(kept) == ["another-call", "recent-call"]


async def test_round_robin_is_shared_by_workers_and_survives_a_restart(
    team: dict[str, int], settings: Settings
) -> None:
    now = msk(23, 13)
    a, b = Worker(settings), Worker(settings)
    try:
        asks = [(a if i % 2 else b).ask(STRANGER, f"rr{i}", now) for i in range(20)]
        got = await asyncio.gather(*asks)
        assert Counter(d.target for d in got) == {"201": 10, "202": 10}
        last = (await a.ask(STRANGER, "rr-last", now)).target
    finally:
        await a.close()
        await b.close()
    restarted = Worker(settings)
    try:
        first_after = (await restarted.ask(STRANGER, "rr-after", now)).target
    finally:
        await restarted.close()
    assert first_after != last  # the rotation went on, it did not start over


async def test_a_schedule_change_reaches_routing_at_once(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    services = api.app.state.services
    tz = services.settings.tz
    now = datetime.now(UTC)

    async def ask(call_id: str) -> str:
        decision = await choose_extension(
            services.engine,
            services.sessions,
            services.redis,
            caller=STRANGER,
            did=None,
            pbx="pbx",
            call_id=call_id,
            now=now,
            tz=tz,
            region="RU",
            fallback="queue:sales",
        )
        return decision.target

    assert await ask("s1") == "queue:sales"  # nobody on duty: and the roster is cached
    shift = {
        "user_id": actors[Role.MANAGER].user.id,  # extension 101
        "weekday": now.astimezone(tz).weekday(),
        "starts": "00:00",
        "ends": "00:00",
        "overnight": True,  # the whole day
    }
    async with api.client(actors[Role.SUPERVISOR].token) as http:
        r = await http.post("/schedules/shifts", json=shift)
        assert r.status_code == 201, r.text
    assert await ask("s2") == "101"
