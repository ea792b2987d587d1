"""Client import (progress polled or pushed as `import.progress`) and export."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, UploadFile

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.clients import files as client_files
from crm_api.clients import service as clients_domain
from crm_api.clients.list_models import ImportJob
from crm_api.clients.models import Client
from crm_api.clients.schemas import ClientFilters, ImportJobPublic
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import Services, ServicesDep, SessionDep, require
from crm_api.platform.errors import InvalidInput, NotFound

router = APIRouter(tags=["clients"])
log = logging.getLogger(__name__)


async def _progress(services: Services, job_id: int, user_id: int, **fields: object) -> None:
    async with services.sessions() as session:
        job = await session.get(ImportJob, job_id)
        assert job is not None
        for key, value in fields.items():
            setattr(job, key, value)
        await session.commit()
        public = ImportJobPublic.model_validate(job)
    await services.hub.notify("import.progress", public.model_dump(mode="json"), users=[user_id])


async def run_import(
    services: Services, job_id: int, user: User, filename: str, content: bytes
) -> None:
    region = services.settings.default_region
    try:
        rows = client_files.read_rows(filename, content)
        if len(rows) > services.settings.import_max_rows:
            raise client_files.UnreadableFile(
                f"{len(rows)} rows; at most {services.settings.import_max_rows} in one file"
            )
        await _progress(services, job_id, user.id, total=len(rows))
        async with services.sessions() as session:
            actor = await session.get(User, user.id)

            async def validated(n: int) -> None:
                await _progress(services, job_id, user.id, processed=n)

            good, errors = await client_files.validate_rows(session, rows, region, validated)
            if errors:
                await _progress(
                    services,
                    job_id,
                    user.id,
                    status="failed",
                    processed=len(rows),
                    errors=[{"row": e.row, "field": e.field, "message": e.message} for e in errors],
                    message=f"{len({e.row for e in errors})} rows have errors; nothing imported",
                    finished_at=utcnow(),
                )
                return
            for _line, create in good:
                await clients_domain.create_client(session, actor, create, region)
            await session.commit()
        await _progress(
            services,
            job_id,
            user.id,
            status="done",
            processed=len(rows),
            created=len(good),
            message=f"{len(good)} clients imported",
            finished_at=utcnow(),
        )
    except client_files.UnreadableFile as exc:
        await _progress(
            services, job_id, user.id, status="failed", message=exc.message, finished_at=utcnow()
        )
    except Exception as exc:
        log.exception("import %s failed", job_id)
        await _progress(
            services,
            job_id,
            user.id,
            status="failed",
            message=f"import failed, nothing was imported: {exc}",
            finished_at=utcnow(),
        )


@router.post("/clients/import", status_code=202, operation_id="import_clients")
async def import_clients(
    file: UploadFile,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.CLIENTS_IMPORT)],
) -> ImportJobPublic:
    filename = file.filename or "upload.csv"
    if not filename.lower().endswith((".csv", ".xlsx")):
        raise InvalidInput("file", "a .csv or .xlsx file is expected")
    limit = services.settings.import_max_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise InvalidInput("file", f"larger than {limit // (1024 * 1024)} MB")
    job = ImportJob(user_id=user.id, filename=filename, status="running", errors=[])
    session.add(job)
    await session.commit()
    task = asyncio.create_task(run_import(services, job.id, user, filename, content))
    services.background.add(task)
    task.add_done_callback(services.background.discard)
    return ImportJobPublic.model_validate(job)


@router.get("/imports/{job_id}", operation_id="get_import")
async def get_import(
    job_id: int,
    session: SessionDep,
    user: Annotated[User, require(Permission.CLIENTS_IMPORT)],
) -> ImportJobPublic:
    job = await session.get(ImportJob, job_id)
    if job is None or job.user_id != user.id:
        raise NotFound(f"import #{job_id} not found")
    return ImportJobPublic.model_validate(job)


@router.get("/clients/export", operation_id="export_clients")
async def export_clients(
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.CLIENTS_EXPORT)],
    filters: Annotated[ClientFilters, Depends()],
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
) -> Response:
    query = clients_domain.filtered(user, filters, services.settings.default_region)
    rows = await session.scalars(query.options(*clients_domain.CARD_LOAD).order_by(Client.id))
    data = [client_files.export_row(c) for c in rows]
    if format == "xlsx":
        body = client_files.write_xlsx(data)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        body = client_files.write_csv(data)
        media = "text/csv; charset=utf-8"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="clients.{format}"'},
    )
