"""Client import (progress polled or pushed as `import.progress`) and export."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, UploadFile

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.clients import files as client_files
from crm_api.clients import imports
from crm_api.clients.schemas import ImportJobPublic
from crm_api.clients.types import ClientFilters
from crm_api.platform import spreadsheets
from crm_api.platform.deps import ServicesDep, SessionDep, require
from crm_api.platform.errors import InvalidInput
from crm_api.platform.schemas import Id

router = APIRouter(tags=["clients"])


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
    job = await imports.start_import(session, services, user, filename, content)
    return ImportJobPublic.model_validate(job)


@router.get("/imports/{job_id}", operation_id="get_import")
async def get_import(
    job_id: Id,
    session: SessionDep,
    user: Annotated[User, require(Permission.CLIENTS_IMPORT)],
) -> ImportJobPublic:
    return ImportJobPublic.model_validate(await imports.job_for(session, user, job_id))


@router.get(
    "/clients/export",
    operation_id="export_clients",
    response_class=Response,
    responses={200: {"content": spreadsheets.FILE_CONTENT}},
)
async def export_clients(
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.CLIENTS_EXPORT)],
    filters: Annotated[ClientFilters, Depends()],
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
) -> Response:
    rows = await client_files.exported(session, user, filters, services.settings.default_region)
    data = [client_files.export_row(c) for c in rows]
    if format == "xlsx":
        body = client_files.write_xlsx(data)
        media = spreadsheets.XLSX_MEDIA
    else:
        body = client_files.write_csv(data, user.language)
        media = spreadsheets.CSV_MEDIA
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="clients.{format}"'},
    )
