"""Sales reports, computed by the database (GROUP BY), on SQLite and PostgreSQL.

Days, weeks and months are those of the company's calendar: PostgreSQL converts with
the zone's rules, SQLite shifts by the zone's UTC offset at the start of the range (the
default zone, Moscow, has had one fixed offset since 2014). Every report is a `Table`
(named columns, rows of plain values) so JSON, CSV and XLSX render it alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Float, and_, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from crm_api.accounts.models import Role, User
from crm_api.clients.directories.models import LeadSource, Segment
from crm_api.clients.models import Client
from crm_api.clients.timeline.models import CommDirection, CommKind, Communication
from crm_api.platform.errors import InvalidInput
from crm_api.sales.models import Deal, DealStage, DealStageVisit, SalesPlan, StageKind
from crm_api.sales.money import from_minor

Bucket = Literal["day", "week", "month"]
MAX_DAYS = 400


@dataclass(frozen=True, slots=True)
class Period:
    """Local dates [first, last] of the company calendar and their UTC bounds."""

    first: date
    last: date
    tz: ZoneInfo
    start: datetime
    end: datetime

    @classmethod
    def of(cls, first: date, last: date, tz: ZoneInfo) -> Period:
        if last < first:
            raise InvalidInput("end", "the range ends before it starts")
        if (last - first).days >= MAX_DAYS:
            raise InvalidInput("end", f"at most {MAX_DAYS} days at once")
        start = datetime.combine(first, time(0), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
        return cls(first, last, tz, start, end)

    def months(self) -> list[date]:
        out, m = [], self.first.replace(day=1)
        while m <= self.last:
            out.append(m)
            m = (m + timedelta(days=32)).replace(day=1)
        return out


@dataclass
class Table:
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows}


class _Sql:
    """The two dialects' spellings of local dates and durations."""

    def __init__(self, session: AsyncSession, period: Period) -> None:
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.tz = period.tz
        offset = period.start.astimezone(period.tz).utcoffset() or timedelta(0)
        self.shift = f"{int(offset.total_seconds() // 60):+d} minutes"

    def bucket(self, col: Any, unit: Bucket) -> Any:
        """The local day/week/month start: a date on PostgreSQL, ISO text on SQLite."""
        if self.pg:
            local = func.timezone(self.tz.key, col)
            if unit == "day":
                return cast(local, Date)
            return cast(func.date_trunc(unit, local), Date)
        if unit == "day":
            return func.date(col, self.shift)
        if unit == "week":  # the Monday on or before the day
            return func.date(col, self.shift, "-6 days", "weekday 1")
        return func.strftime("%Y-%m-01", col, self.shift)

    def seconds(self, later: Any, earlier: Any) -> Any:
        if self.pg:
            return func.extract("epoch", later - earlier)
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _money(minor: Any) -> str:
    return str(from_minor(int(minor or 0)))


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _managers_filter(col: Any, manager_ids: Sequence[int] | None) -> ColumnElement[bool]:
    return col.in_(manager_ids) if manager_ids is not None else literal(True)


def scope_managers(actor: User, requested: Sequence[int] | None) -> list[int] | None:
    """A manager reports on themself only; staff on whom they ask (None: everyone)."""
    if actor.role is Role.MANAGER:
        return [actor.id]
    return list(requested) if requested else None


async def _names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.full_name).where(User.id.in_(ids)))
    return dict(rows.all())


# --- (a) the manager's daily report ----------------------------------------------------


async def manager_daily(
    session: AsyncSession, period: Period, manager_ids: Sequence[int] | None
) -> Table:
    sql = _Sql(session, period)
    rows: dict[tuple[int, str], dict[str, Any]] = {}

    def row(uid: int | None, day: str) -> dict[str, Any]:
        assert uid is not None  # the queries select managed deals only
        return rows.setdefault(
            (uid, day),
            {
                "day": day,
                "manager_id": uid,
                "deals_created": 0,
                "deals_created_sum": 0,
                "deals_cancelled": 0,
                "deals_cancelled_sum": 0,
                "deals_won": 0,
                "sales_sum": 0,
                "calls_in": 0,
                "calls_out": 0,
                "calls_missed": 0,
                "talk_seconds": 0,
                "sms_in": 0,
                "sms_out": 0,
                "emails_in": 0,
                "emails_out": 0,
            },
        )

    created_day = sql.bucket(Deal.created_at, "day")
    created = await session.execute(
        select(Deal.manager_id, created_day, func.count(), func.sum(Deal.amount_minor))
        .where(
            Deal.created_at >= period.start,
            Deal.created_at < period.end,
            Deal.manager_id.is_not(None),
            _managers_filter(Deal.manager_id, manager_ids),
        )
        .group_by(Deal.manager_id, created_day)
    )
    for uid, day, n, total in created:
        r = row(uid, str(day))
        r["deals_created"], r["deals_created_sum"] = n, total or 0

    closed_day = sql.bucket(Deal.closed_at, "day")
    closed = await session.execute(
        select(
            Deal.manager_id, closed_day, Deal.stage_kind, func.count(), func.sum(Deal.amount_minor)
        )
        .where(
            Deal.closed_at >= period.start,
            Deal.closed_at < period.end,
            Deal.manager_id.is_not(None),
            _managers_filter(Deal.manager_id, manager_ids),
        )
        .group_by(Deal.manager_id, closed_day, Deal.stage_kind)
    )
    for uid, day, kind, n, total in closed:
        r = row(uid, str(day))
        if kind is StageKind.WON:
            r["deals_won"], r["sales_sum"] = n, total or 0
        elif kind is StageKind.LOST:
            r["deals_cancelled"], r["deals_cancelled_sum"] = n, total or 0

    # One row per manager and day, every figure a conditional sum: fewer groups to sort.
    comm_day = sql.bucket(Communication.occurred_at, "day")
    kind, direction = Communication.kind, Communication.direction
    inbound = direction == CommDirection.INBOUND
    outbound = direction == CommDirection.OUTBOUND
    is_call = kind == CommKind.CALL

    def n_of(*conds: ColumnElement[bool]) -> Any:
        return func.sum(case((and_(*conds), 1), else_=0))

    figures = {
        "calls_in": n_of(is_call, inbound),
        "calls_out": n_of(is_call, outbound),
        "calls_missed": n_of(is_call, inbound, Communication.status != "answered"),
        "talk_seconds": func.sum(
            case((is_call, Communication.details["talk_s"].as_float()), else_=None)
        ),
        "sms_in": n_of(kind == CommKind.SMS, inbound),
        "sms_out": n_of(kind == CommKind.SMS, outbound),
        "emails_in": n_of(kind == CommKind.EMAIL, inbound),
        "emails_out": n_of(kind == CommKind.EMAIL, outbound),
    }
    comms = await session.execute(
        select(Communication.user_id, comm_day, *figures.values())
        .where(
            Communication.occurred_at >= period.start,
            Communication.occurred_at < period.end,
            Communication.user_id.is_not(None),
            kind.in_([CommKind.CALL, CommKind.SMS, CommKind.EMAIL]),
            _managers_filter(Communication.user_id, manager_ids),
        )
        .group_by(Communication.user_id, comm_day)
    )
    for uid, day, *values in comms:
        r = row(uid, str(day))
        for key, value in zip(figures, values, strict=True):
            r[key] = round(float(value or 0)) if key == "talk_seconds" else int(value or 0)

    plans = await _plans(session, period, manager_ids)
    names = await _names(session, {uid for uid, _ in rows})
    out = []
    for (uid, day), r in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        month = date.fromisoformat(day).replace(day=1)
        r["manager"] = names.get(uid, "")
        r["plan_month"] = _money(plans.get((uid, month), 0))
        for key in ("deals_created_sum", "deals_cancelled_sum", "sales_sum"):
            r[key] = _money(r[key])
        out.append(r)
    columns = [
        "day",
        "manager_id",
        "manager",
        "deals_created",
        "deals_created_sum",
        "deals_cancelled",
        "deals_cancelled_sum",
        "deals_won",
        "sales_sum",
        "plan_month",
        "calls_in",
        "calls_out",
        "calls_missed",
        "talk_seconds",
        "sms_in",
        "sms_out",
        "emails_in",
        "emails_out",
    ]
    return Table(columns, out)


async def _plans(
    session: AsyncSession, period: Period, manager_ids: Sequence[int] | None
) -> dict[tuple[int, date], int]:
    rows = await session.execute(
        select(SalesPlan.user_id, SalesPlan.month, SalesPlan.amount_minor).where(
            SalesPlan.month >= period.first.replace(day=1),
            SalesPlan.month <= period.last,
            _managers_filter(SalesPlan.user_id, manager_ids),
        )
    )
    return {(uid, month): amount for uid, month, amount in rows}


# --- (b) lead sources ------------------------------------------------------------------


async def lead_sources(
    session: AsyncSession, period: Period, manager_ids: Sequence[int] | None
) -> Table:
    new_clients = dict(
        (
            await session.execute(
                select(Client.lead_source_id, func.count())
                .where(
                    Client.created_at >= period.start,
                    Client.created_at < period.end,
                    _managers_filter(Client.manager_id, manager_ids),
                )
                .group_by(Client.lead_source_id)
            )
        ).all()
    )
    deals = {
        sid: (n, total)
        for sid, n, total in (
            await session.execute(
                select(Deal.lead_source_id, func.count(), func.sum(Deal.amount_minor))
                .where(
                    Deal.created_at >= period.start,
                    Deal.created_at < period.end,
                    _managers_filter(Deal.manager_id, manager_ids),
                )
                .group_by(Deal.lead_source_id)
            )
        )
    }
    won = {
        sid: (n, total)
        for sid, n, total in (
            await session.execute(
                select(Deal.lead_source_id, func.count(), func.sum(Deal.amount_minor))
                .where(
                    Deal.closed_at >= period.start,
                    Deal.closed_at < period.end,
                    Deal.stage_kind == StageKind.WON,
                    _managers_filter(Deal.manager_id, manager_ids),
                )
                .group_by(Deal.lead_source_id)
            )
        )
    }
    names: dict[int | None, str] = dict(
        (await session.execute(select(LeadSource.id, LeadSource.name))).all()
    )
    ids = set(new_clients) | set(deals) | set(won)
    out = []
    for sid in sorted(ids, key=lambda s: (s is None, names.get(s, ""), s or 0)):
        n_deals, deal_sum = deals.get(sid, (0, 0))
        n_won, won_sum = won.get(sid, (0, 0))
        out.append(
            {
                "lead_source_id": sid,
                "lead_source": names.get(sid, "") if sid is not None else "",
                "new_clients": new_clients.get(sid, 0),
                "deals": n_deals,
                "deals_sum": _money(deal_sum),
                "won": n_won,
                "won_sum": _money(won_sum),
            }
        )
    return Table(
        ["lead_source_id", "lead_source", "new_clients", "deals", "deals_sum", "won", "won_sum"],
        out,
    )


# --- (c) managers' sales ---------------------------------------------------------------


async def managers_sales(
    session: AsyncSession, period: Period, manager_ids: Sequence[int] | None
) -> Table:
    closed = await session.execute(
        select(Deal.manager_id, Deal.stage_kind, func.count(), func.sum(Deal.amount_minor))
        .where(
            Deal.closed_at >= period.start,
            Deal.closed_at < period.end,
            Deal.manager_id.is_not(None),
            _managers_filter(Deal.manager_id, manager_ids),
        )
        .group_by(Deal.manager_id, Deal.stage_kind)
    )
    per: dict[int, dict[str, int]] = {}
    for uid, kind, n, total in closed:
        assert uid is not None  # the query selects managed deals only
        r = per.setdefault(uid, {"won": 0, "won_sum": 0, "lost": 0, "lost_sum": 0, "plan": 0})
        r[str(kind)], r[f"{kind}_sum"] = n, int(total or 0)
    plan_rows = await session.execute(
        select(SalesPlan.user_id, func.sum(SalesPlan.amount_minor))
        .where(
            SalesPlan.month >= period.first.replace(day=1),
            SalesPlan.month <= period.last,
            _managers_filter(SalesPlan.user_id, manager_ids),
        )
        .group_by(SalesPlan.user_id)
    )
    for uid, total in plan_rows:
        r = per.setdefault(uid, {"won": 0, "won_sum": 0, "lost": 0, "lost_sum": 0, "plan": 0})
        r["plan"] = int(total or 0)
    names = await _names(session, set(per))
    out = [
        {
            "manager_id": uid,
            "manager": names.get(uid, ""),
            "won": r["won"],
            "won_sum": _money(r["won_sum"]),
            "lost": r["lost"],
            "lost_sum": _money(r["lost_sum"]),
            "plan": _money(r["plan"]),
            "plan_completion_pct": _pct(r["won_sum"], r["plan"]),
        }
        for uid, r in sorted(per.items(), key=lambda kv: (names.get(kv[0], ""), kv[0]))
    ]
    return Table(
        [
            "manager_id",
            "manager",
            "won",
            "won_sum",
            "lost",
            "lost_sum",
            "plan",
            "plan_completion_pct",
        ],
        out,
    )


# --- (d) the funnel --------------------------------------------------------------------


async def funnel(session: AsyncSession, period: Period, manager_ids: Sequence[int] | None) -> Table:
    """Deals created in the period (a cohort): where they are now (count, sum), how many
    reached each stage of the open → won chain (a deal that skipped a stage passed it),
    conversion from the previous stage, and the average stay in each stage."""
    sql = _Sql(session, period)
    cohort = and_(
        Deal.created_at >= period.start,
        Deal.created_at < period.end,
        _managers_filter(Deal.manager_id, manager_ids),
    )
    stage_rows = await session.scalars(select(DealStage).order_by(DealStage.position, DealStage.id))
    stage_list = list(stage_rows.all())
    now_in = {
        sid: (n, total)
        for sid, n, total in (
            await session.execute(
                select(Deal.stage_id, func.count(), func.sum(Deal.amount_minor))
                .where(cohort)
                .group_by(Deal.stage_id)
            )
        )
    }

    def cohort_visits(*cols: Any) -> Any:
        # The cohort's visits come straight from their own index on the deal's creation.
        q = select(*cols).where(
            DealStageVisit.deal_created_at >= period.start,
            DealStageVisit.deal_created_at < period.end,
        )
        if manager_ids is not None:
            q = q.join(Deal, Deal.id == DealStageVisit.deal_id).where(
                Deal.manager_id.in_(manager_ids)
            )
        return q.join(DealStage, DealStage.id == DealStageVisit.stage_id)

    # The furthest open/won position each deal of the cohort reached, counted per position.
    furthest = (
        cohort_visits(DealStageVisit.deal_id, func.max(DealStage.position).label("pos"))
        .where(DealStage.kind != StageKind.LOST)
        .group_by(DealStageVisit.deal_id)
        .subquery()
    )
    per_pos: dict[int, int] = dict(
        (await session.execute(select(furthest.c.pos, func.count()).group_by(furthest.c.pos))).all()
    )
    # A won or lost deal stays there for good: time in stage is for open stages only.
    stay = sql.seconds(
        func.coalesce(
            DealStageVisit.left_at, literal(period.end, type_=DealStageVisit.left_at.type)
        ),
        DealStageVisit.entered_at,
    )
    avg_stay: dict[int, float | None] = dict(
        (
            await session.execute(
                cohort_visits(DealStageVisit.stage_id, func.avg(cast(stay, Float)))
                .where(DealStage.kind == StageKind.OPEN)
                .group_by(DealStageVisit.stage_id)
            )
        ).all()
    )
    out = []
    previous: int | None = None
    for stage in stage_list:
        n, total = now_in.get(stage.id, (0, 0))
        if stage.kind is StageKind.LOST:
            reached: int | None = n
            conversion = None
        else:
            reached = sum(c for pos, c in per_pos.items() if pos >= stage.position)
            conversion = _pct(reached, previous) if previous is not None else None
            previous = reached
        seconds = avg_stay.get(stage.id)
        out.append(
            {
                "stage_id": stage.id,
                "stage": stage.name,
                "kind": str(stage.kind),
                "count": n,
                "sum": _money(total),
                "reached": reached,
                "conversion_pct": conversion,
                "avg_seconds_in_stage": round(float(seconds), 1) if seconds is not None else None,
            }
        )
    return Table(
        [
            "stage_id",
            "stage",
            "kind",
            "count",
            "sum",
            "reached",
            "conversion_pct",
            "avg_seconds_in_stage",
        ],
        out,
    )


# --- (e) analytics by segment and manager over time -----------------------------------


async def analytics(
    session: AsyncSession, period: Period, manager_ids: Sequence[int] | None, bucket: Bucket
) -> Table:
    sql = _Sql(session, period)
    rows: dict[tuple[str, int | None, int | None], dict[str, Any]] = {}

    def row(b: str, seg: int | None, uid: int | None) -> dict[str, Any]:
        return rows.setdefault(
            (b, seg, uid),
            {
                "bucket": b,
                "segment_id": seg,
                "manager_id": uid,
                "new_deals": 0,
                "new_sum": 0,
                "won": 0,
                "won_sum": 0,
            },
        )

    created_b = sql.bucket(Deal.created_at, bucket)
    for b, seg, uid, n, total in await session.execute(
        select(
            created_b,
            Client.segment_id,
            Deal.manager_id,
            func.count(),
            func.sum(Deal.amount_minor),
        )
        .join(Client, Client.id == Deal.client_id)
        .where(
            Deal.created_at >= period.start,
            Deal.created_at < period.end,
            _managers_filter(Deal.manager_id, manager_ids),
        )
        .group_by(created_b, Client.segment_id, Deal.manager_id)
    ):
        r = row(str(b), seg, uid)
        r["new_deals"], r["new_sum"] = n, int(total or 0)
    closed_b = sql.bucket(Deal.closed_at, bucket)
    for b, seg, uid, n, total in await session.execute(
        select(
            closed_b,
            Client.segment_id,
            Deal.manager_id,
            func.count(),
            func.sum(Deal.amount_minor),
        )
        .join(Client, Client.id == Deal.client_id)
        .where(
            Deal.closed_at >= period.start,
            Deal.closed_at < period.end,
            Deal.stage_kind == StageKind.WON,
            _managers_filter(Deal.manager_id, manager_ids),
        )
        .group_by(closed_b, Client.segment_id, Deal.manager_id)
    ):
        r = row(str(b), seg, uid)
        r["won"], r["won_sum"] = n, int(total or 0)
    segments = dict((await session.execute(select(Segment.id, Segment.name))).all())
    names = await _names(session, {uid for _, _, uid in rows if uid is not None})
    out = []
    for key in sorted(rows, key=lambda k: (k[0], k[1] or 0, k[2] or 0)):
        r = rows[key]
        r["segment"] = segments.get(r["segment_id"], "") if r["segment_id"] else ""
        r["manager"] = names.get(r["manager_id"], "") if r["manager_id"] else ""
        r["new_sum"], r["won_sum"] = _money(r["new_sum"]), _money(r["won_sum"])
        out.append(r)
    return Table(
        [
            "bucket",
            "segment_id",
            "segment",
            "manager_id",
            "manager",
            "new_deals",
            "new_sum",
            "won",
            "won_sum",
        ],
        out,
    )
