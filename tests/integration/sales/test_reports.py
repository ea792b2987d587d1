"""The reports against numbers worked out by hand on a small fixed data set (November
2026, company time Moscow, UTC+3), on SQLite and PostgreSQL; and their downloads."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.factories import Actor, make_user
from support.server import RunningApi

from crm_api.accounts.models import Role
from crm_api.clients.directories.models import LeadSource, Segment
from crm_api.clients.models import Client, ClientKind
from crm_api.clients.timeline.models import CommDirection, CommKind, Communication
from crm_api.platform.spreadsheets import HEADINGS_RU
from crm_api.sales import reports
from crm_api.sales import service as deals
from crm_api.sales.models import SalesPlan
from crm_api.sales.types import NewDeal

MSK = ZoneInfo("Europe/Moscow")
NOV = reports.Period.of(date(2026, 11, 1), date(2026, 11, 30), MSK)


def msk(month: int, day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, month, day, hh, mm, tzinfo=MSK).astimezone(UTC)


@dataclass
class Data:
    m1: Actor
    m2: Actor
    site: int
    referral: int
    retail: int
    wholesale: int


@pytest.fixture
async def data(db: async_sessionmaker[AsyncSession]) -> Data:
    async with db() as session:
        m1 = await make_user(session, Role.MANAGER, name="Анна")
        m2 = await make_user(session, Role.MANAGER, name="Борис")
        site, referral = LeadSource(name="Сайт"), LeadSource(name="Рекомендация")
        retail, wholesale = Segment(name="Розница"), Segment(name="Опт")
        session.add_all([site, referral, retail, wholesale])
        await session.flush()

        def client(name: str, manager: Actor, src: int | None, seg: int | None, at: datetime):
            return Client(
                kind=ClientKind.COMPANY,
                name=name,
                search_name=name.casefold(),
                manager_id=manager.user.id,
                lead_source_id=src,
                segment_id=seg,
                created_at=at,
                updated_at=at,
            )

        c1 = client("c1", m1, site.id, retail.id, msk(11, 2, 9))
        c2 = client("c2", m2, referral.id, wholesale.id, msk(11, 3, 8))
        c3 = client("c3", m1, None, None, msk(10, 15, 9))  # before the period
        session.add_all([c1, c2, c3])
        await session.flush()
        stages = {s.code: s.id for s in await deals.stages(session)}

        async def deal(who: Actor, c: Client, amount: str, at: datetime) -> int:
            d = await deals.create_deal(
                session,
                who.user,
                NewDeal(client_id=c.id, title="d", amount=Decimal(amount)),
                at=at,
            )
            return d.id

        async def move(who: Actor, deal_id: int, code: str, at: datetime) -> None:
            await deals.move_deal(session, who.user, deal_id, stages[code], at=at)

        async def close(who: Actor, deal_id: int, outcome: str, at: datetime) -> None:
            reason = "дорого" if outcome == "lost" else None
            await deals.close_deal(
                session, who.user, deal_id, outcome=outcome, reason=reason, at=at
            )

        d1 = await deal(m1, c1, "1000", msk(11, 2, 10))
        await move(m1, d1, "first_contact", msk(11, 2, 12))
        await move(m1, d1, "negotiation", msk(11, 3, 12))
        await close(m1, d1, "won", msk(11, 5, 12))
        d2 = await deal(m1, c1, "500", msk(11, 2, 11))
        await close(m1, d2, "lost", msk(11, 4, 11))
        d3 = await deal(m2, c2, "2000", msk(11, 3, 9))
        await move(m2, d3, "deciding", msk(11, 4, 9))
        d4 = await deal(m2, c2, "300", msk(11, 10, 10))
        await close(m2, d4, "won", msk(11, 10, 18))
        d5 = await deal(m1, c3, "700", msk(10, 20, 10))  # made in October, won in November
        await close(m1, d5, "won", msk(11, 6, 10))

        def comm(who: Actor, c: Client, kind: CommKind, d: CommDirection, at: datetime, **kw):
            status = kw.pop("status", "done")
            return Communication(
                client_id=c.id,
                kind=kind,
                direction=d,
                status=status,
                user_id=who.user.id,
                occurred_at=at,
                details=kw,
            )

        call, sms, email = CommKind.CALL, CommKind.SMS, CommKind.EMAIL
        inb, out = CommDirection.INBOUND, CommDirection.OUTBOUND
        session.add_all(
            [
                comm(m1, c1, call, inb, msk(11, 2, 10, 5), status="answered", talk_s=60.0),
                comm(m1, c1, call, inb, msk(11, 2, 23, 30), status="missed", talk_s=0.0),
                comm(m1, c1, call, out, msk(11, 2, 15), status="answered", talk_s=30.0),
                comm(m1, c1, sms, out, msk(11, 2, 16)),
                comm(m1, c1, sms, inb, msk(11, 2, 16, 5)),
                comm(m1, c1, email, out, msk(11, 2, 17)),
                # 00:30 in Moscow is still the 2nd in UTC: it belongs to the 3rd.
                comm(m1, c1, call, inb, msk(11, 3, 0, 30), status="answered", talk_s=10.0),
                comm(m2, c2, call, inb, msk(11, 3, 10), status="answered", talk_s=120.0),
                comm(m2, c2, call, inb, msk(12, 1, 0, 30), status="answered", talk_s=5.0),  # Dec
            ]
        )
        session.add_all(
            [
                SalesPlan(user_id=m1.user.id, month=date(2026, 11, 1), amount_minor=200000),
                SalesPlan(user_id=m2.user.id, month=date(2026, 11, 1), amount_minor=100000),
                SalesPlan(user_id=m2.user.id, month=date(2026, 12, 1), amount_minor=999900),
            ]
        )
        await session.commit()
        return Data(m1, m2, site.id, referral.id, retail.id, wholesale.id)


async def test_managers_sales(data: Data, db: async_sessionmaker[AsyncSession]) -> None:
    async with db() as session:
        table = await reports.managers_sales(session, NOV, None)
    got = {
        (
            r["manager"],
            r["won"],
            r["won_sum"],
            r["lost"],
            r["lost_sum"],
            r["plan"],
            r["plan_completion_pct"],
        )
        for r in table.rows
    }
    assert got == {
        ("Анна", 2, "1700.00", 1, "500.00", "2000.00", 85.0),
        ("Борис", 1, "300.00", 0, "0.00", "1000.00", 30.0),
    }


async def test_manager_daily(data: Data, db: async_sessionmaker[AsyncSession]) -> None:
    async with db() as session:
        table = await reports.manager_daily(session, NOV, None)
    rows = {(r["day"], r["manager"]): r for r in table.rows}
    assert sorted(rows) == [
        ("2026-11-02", "Анна"),
        ("2026-11-03", "Анна"),
        ("2026-11-03", "Борис"),
        ("2026-11-04", "Анна"),
        ("2026-11-05", "Анна"),
        ("2026-11-06", "Анна"),
        ("2026-11-10", "Борис"),
    ]
    a2 = rows[("2026-11-02", "Анна")]
    assert (a2["deals_created"], a2["deals_created_sum"]) == (2, "1500.00")
    assert (a2["calls_in"], a2["calls_out"], a2["calls_missed"], a2["talk_seconds"]) == (
        2,
        1,
        1,
        90,
    )
    assert (a2["sms_in"], a2["sms_out"], a2["emails_in"], a2["emails_out"]) == (1, 1, 0, 1)
    assert a2["plan_month"] == "2000.00"
    a3 = rows[("2026-11-03", "Анна")]
    assert (a3["calls_in"], a3["talk_seconds"], a3["deals_created"]) == (1, 10, 0)
    b3 = rows[("2026-11-03", "Борис")]
    assert (b3["deals_created"], b3["deals_created_sum"], b3["talk_seconds"]) == (1, "2000.00", 120)
    a4 = rows[("2026-11-04", "Анна")]
    assert (a4["deals_cancelled"], a4["deals_cancelled_sum"]) == (1, "500.00")
    assert rows[("2026-11-05", "Анна")]["sales_sum"] == "1000.00"
    assert rows[("2026-11-06", "Анна")]["sales_sum"] == "700.00"
    b10 = rows[("2026-11-10", "Борис")]
    assert (b10["deals_created"], b10["deals_won"], b10["sales_sum"]) == (1, 1, "300.00")
    # One manager only.
    async with db() as session:
        only = await reports.manager_daily(session, NOV, [data.m2.user.id])
    assert {r["manager"] for r in only.rows} == {"Борис"}


async def test_lead_sources(data: Data, db: async_sessionmaker[AsyncSession]) -> None:
    async with db() as session:
        table = await reports.lead_sources(session, NOV, None)
    got = {
        r["lead_source_id"]: (r["new_clients"], r["deals"], r["deals_sum"], r["won"], r["won_sum"])
        for r in table.rows
    }
    assert got == {
        data.site: (1, 2, "1500.00", 1, "1000.00"),
        data.referral: (1, 2, "2300.00", 1, "300.00"),
        None: (0, 0, "0.00", 1, "700.00"),  # the October deal won in November
    }


async def test_funnel(data: Data, db: async_sessionmaker[AsyncSession]) -> None:
    async with db() as session:
        table = await reports.funnel(session, NOV, None)
    got = {
        r["stage"]: (r["count"], r["sum"], r["reached"], r["conversion_pct"]) for r in table.rows
    }
    assert got == {
        "Unsorted": (0, "0.00", 4, None),
        "First contact": (0, "0.00", 3, 75.0),
        "Negotiation": (0, "0.00", 3, 100.0),
        "Deciding": (1, "2000.00", 3, 100.0),  # d3 jumped here: it passed the two before
        "Contract approval": (0, "0.00", 2, 66.67),
        "Won": (2, "1300.00", 2, 100.0),
        "Lost": (1, "500.00", 1, None),
    }
    stay = {r["stage"]: r["avg_seconds_in_stage"] for r in table.rows}
    assert stay["Unsorted"] == (7200 + 172800 + 86400 + 28800) / 4
    assert stay["First contact"] == 86400
    assert stay["Negotiation"] == 172800
    assert stay["Deciding"] == 26 * 86400 + 15 * 3600  # still there at the period's end
    assert stay["Won"] is None and stay["Lost"] is None  # final: no time "in" them


async def test_analytics_by_month_and_week(
    data: Data, db: async_sessionmaker[AsyncSession]
) -> None:
    async with db() as session:
        month = await reports.analytics(session, NOV, None, "month")
        week = await reports.analytics(session, NOV, None, "week")
    got = {
        (r["bucket"], r["segment"], r["manager"]): (
            r["new_deals"],
            r["new_sum"],
            r["won"],
            r["won_sum"],
        )
        for r in month.rows
    }
    assert got == {
        ("2026-11-01", "Розница", "Анна"): (2, "1500.00", 1, "1000.00"),
        ("2026-11-01", "", "Анна"): (0, "0.00", 1, "700.00"),
        ("2026-11-01", "Опт", "Борис"): (2, "2300.00", 1, "300.00"),
    }
    weekly = {(r["bucket"], r["manager"], r["segment"]): r["new_deals"] for r in week.rows}
    assert weekly[("2026-11-02", "Анна", "Розница")] == 2  # Monday of the week
    assert weekly[("2026-11-02", "Борис", "Опт")] == 1
    assert weekly[("2026-11-09", "Борис", "Опт")] == 1


async def test_downloads_and_a_managers_own_view(
    api: RunningApi, data: Data, db: async_sessionmaker[AsyncSession]
) -> None:
    async with db() as session:
        boss = await make_user(session, Role.SUPERVISOR)
        await session.commit()
    params = {"start": "2026-11-01", "end": "2026-11-30"}
    async with api.client(boss.token) as http:
        r = await http.get("/reports/managers-sales", params={**params, "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        # A Russian user's CSV: `;` between cells, Russian headings, decimal commas.
        text = r.content.decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
        assert {row["Менеджер"]: row["Сумма успешных"] for row in rows} == {
            "Анна": "1700,00",
            "Борис": "300,00",
        }
        r = await http.get("/reports/funnel", params={**params, "format": "xlsx"})
        assert r.status_code == 200
        sheet = load_workbook(io.BytesIO(r.content)).active
        assert sheet is not None
        values = list(sheet.values)
        assert values[0][:4] == ("stage_id", "stage", "kind", "count")
        assert [v[1] for v in values[1:]][:2] == ["Unsorted", "First contact"]
        r = await http.get(
            "/reports/manager-daily", params={**params, "manager_id": data.m1.user.id}
        )
        assert {row["manager"] for row in r.json()["rows"]} == {"Анна"}
        r = await http.get("/reports/analytics", params={**params, "bucket": "year"})
        assert r.status_code == 422
        r = await http.get("/reports/funnel", params={"start": "2026-11-30", "end": "2026-11-01"})
        assert r.status_code == 422
    async with api.client(data.m2.token) as http:  # asks for Anna's, gets their own
        r = await http.get(
            "/reports/managers-sales", params={**params, "manager_id": data.m1.user.id}
        )
    assert [row["manager"] for row in r.json()["rows"]] == ["Борис"]


@pytest.mark.parametrize(
    "report", ["manager-daily", "lead-sources", "managers-sales", "funnel", "analytics"]
)
async def test_every_report_column_has_a_russian_heading(
    api: RunningApi, data: Data, db: async_sessionmaker[AsyncSession], report: str
) -> None:
    async with db() as session:
        boss = await make_user(session, Role.SUPERVISOR)  # language: ru
        await session.commit()
    params = {"start": "2026-11-01", "end": "2026-11-30", "format": "csv"}
    async with api.client(boss.token) as http:
        r = await http.get(f"/reports/{report}", params=params)
    assert r.status_code == 200
    headings = next(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert headings and set(headings) <= set(HEADINGS_RU.values()), headings
