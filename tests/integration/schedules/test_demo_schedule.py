"""The demo data routes calls out of the box: at every hour of the week someone with a
phone is on shift, and the routing policy rings them (not the fallback queue)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.accounts.models import User
from crm_api.schedules.routing_state import choose_extension
from crm_api.seed import seed_demo

MSK = ZoneInfo("Europe/Moscow")
MONDAY = datetime(2026, 11, 30, 0, 30, tzinfo=MSK)


async def test_every_hour_of_the_week_rings_someone_on_shift(
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with db() as session:
        await seed_demo(session, clients=5)
        await session.commit()
        names = {u.extension: u.username for u in await session.scalars(select(User))}
    rung: dict[tuple[int, int], str] = {}
    for hour in range(7 * 24):
        now = MONDAY + timedelta(hours=hour)
        decision = await choose_extension(
            db,
            None,
            caller="+79990000000",  # nobody's number: the policy picks who is on shift
            did="74950000000",
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
