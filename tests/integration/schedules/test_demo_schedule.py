"""The demo data routes calls out of the box: at every hour of the week someone with a
phone is on shift, and the routing policy rings them (not the fallback queue); who is on
duty (what each user's header says) follows the demo schedule hour by hour."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support.server import RunningApi

from crm_api.accounts.models import User
from crm_api.accounts.service import issue_token
from crm_api.schedules.routing_state import choose_extension
from crm_api.seed import seed_demo

MSK = ZoneInfo("Europe/Moscow")
MONDAY = datetime(2026, 11, 30, 0, 30, tzinfo=MSK)


async def test_every_hour_of_the_week_rings_someone_on_shift(
    engine: AsyncEngine, db: async_sessionmaker[AsyncSession]
) -> None:
    async with db() as session:
        await seed_demo(session, clients=5)
        await session.commit()
        names = {u.extension: u.username for u in await session.scalars(select(User))}
    rung: dict[tuple[int, int], str] = {}
    for hour in range(7 * 24):
        now = MONDAY + timedelta(hours=hour)
        decision = await choose_extension(
            engine,
            db,
            None,
            caller="+79990000000",  # nobody's number: the policy picks who is on shift
            did="74950000000",
            pbx="pbx",
            call_id=f"demo-{hour}",
            now=now,
            tz=MSK,
            region="RU",
            fallback="queue:sales",
        )
        assert decision.reason == "round_robin", (now, decision)
        assert decision.extension is not None
        rung[(now.weekday(), now.hour)] = names[decision.extension]
    assert rung[(2, 11)] in {"manager", "manager2", "operator"}  # a weekday morning
    assert rung[(5, 12)] == "operator"  # Saturday noon
    assert rung[(3, 19)] == "operator"  # a weekday evening
    assert rung[(6, 3)] == "manager3"  # the night


def demo_on_duty(at: datetime) -> set[str]:
    """The README's demo schedule (Moscow time)."""
    local = at.astimezone(MSK)
    weekday, hour = local.weekday(), local.hour
    on = {"operator"} if 9 <= hour < 21 else {"manager3"}
    if weekday < 5 and 9 <= hour < 18:
        on |= {"manager", "manager2"}
    return on


async def test_on_duty_follows_the_demo_schedule_every_hour_of_the_week(
    api: RunningApi, db: async_sessionmaker[AsyncSession]
) -> None:
    async with db() as session:
        await seed_demo(session, clients=5)
        operator = await session.scalar(select(User).where(User.username == "operator"))
        assert operator is not None
        token = (await issue_token(session, operator, kind="api", ttl=None)).token
        await session.commit()
        names = {u.id: u.username for u in await session.scalars(select(User))}
    wrong = []
    async with api.client(token) as http:  # as the operator's header asks
        for hour in range(7 * 24):
            for minute in (0, 59):  # each side of a shift's first and last minute
                at = MONDAY - timedelta(minutes=30) + timedelta(hours=hour, minutes=minute)
                r = await http.get("/schedules/on-duty", params={"at": at.isoformat()})
                assert r.status_code == 200, r.text
                got = {names[i] for i in r.json()["user_ids"]}
                if got != demo_on_duty(at):
                    wrong.append((at.isoformat(), sorted(got)))
    assert wrong == []
