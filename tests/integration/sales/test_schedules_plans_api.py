"""Schedules (shifts, exceptions, calendar, on duty) and sales plans through the HTTP API;
bad input answers a clear error and writes nothing."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor
from support.server import RunningApi

from crm_api.accounts.models import Role
from crm_api.schedules.models import ScheduleException, Shift

MSK = ZoneInfo("Europe/Moscow")


def msk(day: int, hh: int, mm: int = 0) -> str:
    return datetime(2026, 11, day, hh, mm, tzinfo=MSK).isoformat()  # the 23rd is a Monday


async def test_shifts_exceptions_calendar_and_on_duty(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    boss, manager = actors[Role.SUPERVISOR], actors[Role.MANAGER]
    uid = manager.user.id
    async with api.client(boss.token) as http:
        r = await http.post(
            "/schedules/shifts",
            json={"user_id": uid, "weekday": 0, "starts": "09:00", "ends": "18:00"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["minutes"] == 540
        r = await http.post(
            "/schedules/shifts",
            json={
                "user_id": uid,
                "weekday": 6,
                "starts": "22:00",
                "ends": "06:00",
                "overnight": True,
            },
        )
        assert r.status_code == 201, r.text
        # Bad shapes: ends before it starts; overlapping (the Sunday night reaches Monday).
        r = await http.post(
            "/schedules/shifts",
            json={"user_id": uid, "weekday": 1, "starts": "18:00", "ends": "09:00"},
        )
        assert r.status_code == 422 and "ends before it starts" in r.json()["error"]["message"]
        r = await http.post(
            "/schedules/shifts",
            json={"user_id": uid, "weekday": 0, "starts": "05:00", "ends": "07:00"},
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "shift_overlap"
        r = await http.post(
            "/schedules/shifts",
            json={"user_id": 999999, "weekday": 0, "starts": "05:00", "ends": "07:00"},
        )
        assert r.status_code == 404
        r = await http.post(
            "/schedules/exceptions",
            json={
                "user_id": uid,
                "kind": "vacation",
                "starts_at": msk(24, 0),
                "ends_at": msk(23, 0),
            },
        )
        assert r.status_code == 422
        r = await http.post(
            "/schedules/exceptions",
            json={"user_id": uid, "kind": "sick", "starts_at": msk(23, 12), "ends_at": msk(23, 14)},
        )
        assert r.status_code == 201, r.text
        r = await http.post(
            "/schedules/exceptions",
            json={
                "user_id": uid,
                "kind": "vacation",
                "starts_at": msk(23, 13),
                "ends_at": msk(25, 0),
            },
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "exception_overlap"
        r = await http.post(
            "/schedules/exceptions",
            json={"user_id": uid, "kind": "swap", "starts_at": msk(24, 0), "ends_at": msk(24, 1)},
        )
        assert r.status_code == 422  # a swap names the colleague

    async with api.client(manager.token) as http:
        r = await http.get(
            "/schedules/calendar", params={"start": "2026-11-23", "end": "2026-11-23"}
        )
        assert r.status_code == 200, r.text
        spans = [(d["starts_at"], d["ends_at"]) for d in r.json()["items"]]
        assert spans == [
            ("2026-11-23T00:00:00+03:00", "2026-11-23T06:00:00+03:00"),  # Sunday night's end
            ("2026-11-23T09:00:00+03:00", "2026-11-23T12:00:00+03:00"),
            ("2026-11-23T14:00:00+03:00", "2026-11-23T18:00:00+03:00"),  # after the sick hours
        ]
        r = await http.get("/schedules/on-duty", params={"at": msk(23, 10)})
        assert r.json()["user_ids"] == [uid]
        r = await http.get("/schedules/on-duty", params={"at": msk(23, 13)})
        assert r.json()["user_ids"] == []
        r = await http.post(
            "/schedules/shifts",
            json={"user_id": uid, "weekday": 2, "starts": "09:00", "ends": "18:00"},
        )
        assert r.status_code == 403  # managers read schedules, staff plan them
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Shift)) == 2
        assert await session.scalar(select(func.count()).select_from(ScheduleException)) == 1


async def test_plans(api: RunningApi, actors: dict[Role, Actor]) -> None:
    boss, manager = actors[Role.SUPERVISOR], actors[Role.MANAGER]
    async with api.client(boss.token) as http:
        r = await http.put(f"/plans/{manager.user.id}/2026-11", json={"amount": "150000.00"})
        assert r.status_code == 200, r.text
        r = await http.put(f"/plans/{manager.user.id}/2026-11", json={"amount": "200000"})
        assert r.json()["amount"] == "200000.00"  # set again: replaced, not added
        r = await http.put(f"/plans/{boss.user.id}/2026-12", json={"amount": "1"})
        assert r.status_code == 200
        for bad in ("2026-13", "nope"):
            r = await http.put(f"/plans/{manager.user.id}/{bad}", json={"amount": "1"})
            assert r.status_code == 422, bad
        r = await http.put(f"/plans/{manager.user.id}/2026-11", json={"amount": "-5"})
        assert r.status_code == 422
        r = await http.get("/plans", params={"month_from": "2026-01", "month_to": "2026-12"})
        assert len(r.json()["items"]) == 2
    async with api.client(manager.token) as http:
        r = await http.get("/plans", params={"month_from": "2026-01", "month_to": "2026-12"})
        assert [(p["user_id"], p["month"], p["amount"]) for p in r.json()["items"]] == [
            (manager.user.id, "2026-11-01", "200000.00")
        ]
        r = await http.put(f"/plans/{manager.user.id}/2026-11", json={"amount": "1"})
        assert r.status_code == 403
