"""Sales reports: `?format=json` (default), `csv` or `xlsx`, for a date range of the
company calendar and optionally some managers (a manager always gets their own)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.platform import spreadsheets
from crm_api.platform.deps import ServicesDep, SessionDep, require
from crm_api.platform.schemas import Day, Id
from crm_api.sales import reports

router = APIRouter(prefix="/reports", tags=["reports"])
Reader = Annotated[User, require(Permission.REPORTS_READ)]
Format = Annotated[Literal["json", "csv", "xlsx"], Query()]
Managers = Annotated[list[Id] | None, Query()]
# A report is JSON, or a file when `format` asks for one.
TABLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, **spreadsheets.FILE_CONTENT}}
}

Builder = Callable[[AsyncSession, reports.Period, list[int] | None], Awaitable[reports.Table]]


def write_csv(table: reports.Table, language: str) -> bytes:
    return spreadsheets.write_csv(table.columns, table.rows, language)


def write_xlsx(table: reports.Table, title: str) -> bytes:
    rows = ([_cell(row.get(c)) for c in table.columns] for row in table.rows)
    return spreadsheets.write_xlsx(title, table.columns, rows)


def _cell(value: Any) -> Any:
    # Money travels as "1234.50"; a spreadsheet wants a number it can sum.
    if isinstance(value, str):
        try:
            return float(value) if value.replace(".", "", 1).lstrip("-").isdigit() else value
        except ValueError:
            return value
    return value


def render(table: reports.Table, name: str, fmt: str, language: str) -> Response:
    if fmt == "csv":
        body, media = write_csv(table, language), spreadsheets.CSV_MEDIA
    elif fmt == "xlsx":
        body, media = write_xlsx(table, name), spreadsheets.XLSX_MEDIA
    else:
        return JSONResponse(table.as_json())
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )


async def _run(
    session: AsyncSession,
    services: ServicesDep,
    user: User,
    start: Day,
    end: Day,
    manager_id: list[int] | None,
    name: str,
    fmt: str,
    build: Builder,
) -> Response:
    period = reports.Period.of(start, end, services.settings.tz)
    table = await build(session, period, reports.scope_managers(user, manager_id))
    return render(table, name, fmt, user.language)


@router.get(
    "/manager-daily",
    operation_id="report_manager_daily",
    response_model=None,
    responses=TABLE_RESPONSES,
)
async def manager_daily(
    session: SessionDep,
    services: ServicesDep,
    user: Reader,
    start: Day,
    end: Day,
    manager_id: Managers = None,
    format: Format = "json",
) -> Response:
    return await _run(
        session,
        services,
        user,
        start,
        end,
        manager_id,
        "manager-daily",
        format,
        reports.manager_daily,
    )


@router.get(
    "/lead-sources",
    operation_id="report_lead_sources",
    response_model=None,
    responses=TABLE_RESPONSES,
)
async def lead_sources(
    session: SessionDep,
    services: ServicesDep,
    user: Reader,
    start: Day,
    end: Day,
    manager_id: Managers = None,
    format: Format = "json",
) -> Response:
    return await _run(
        session,
        services,
        user,
        start,
        end,
        manager_id,
        "lead-sources",
        format,
        reports.lead_sources,
    )


@router.get(
    "/managers-sales",
    operation_id="report_managers_sales",
    response_model=None,
    responses=TABLE_RESPONSES,
)
async def managers_sales(
    session: SessionDep,
    services: ServicesDep,
    user: Reader,
    start: Day,
    end: Day,
    manager_id: Managers = None,
    format: Format = "json",
) -> Response:
    return await _run(
        session,
        services,
        user,
        start,
        end,
        manager_id,
        "managers-sales",
        format,
        reports.managers_sales,
    )


@router.get("/funnel", operation_id="report_funnel", response_model=None, responses=TABLE_RESPONSES)
async def funnel(
    session: SessionDep,
    services: ServicesDep,
    user: Reader,
    start: Day,
    end: Day,
    manager_id: Managers = None,
    format: Format = "json",
) -> Response:
    return await _run(
        session, services, user, start, end, manager_id, "funnel", format, reports.funnel
    )


@router.get(
    "/analytics", operation_id="report_analytics", response_model=None, responses=TABLE_RESPONSES
)
async def analytics(
    session: SessionDep,
    services: ServicesDep,
    user: Reader,
    start: Day,
    end: Day,
    manager_id: Managers = None,
    bucket: Annotated[Literal["day", "week", "month"], Query()] = "month",
    format: Format = "json",
) -> Response:
    async def build(s: AsyncSession, p: reports.Period, m: list[int] | None) -> reports.Table:
        return await reports.analytics(s, p, m, bucket)

    return await _run(session, services, user, start, end, manager_id, "analytics", format, build)
