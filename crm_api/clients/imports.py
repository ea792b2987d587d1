"""Client import as a background job: the file is read and every row validated first (a
file with any bad row imports nothing), then the rows are created in short transactions of
`import_batch_rows`, so other users' writes (a login, on SQLite too) never wait behind a
long import. Progress is kept on the job and pushed to its author as `import.progress`."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import User
from crm_api.clients import files as client_files
from crm_api.clients import notifier
from crm_api.clients import service as clients_domain
from crm_api.clients.list_models import ImportJob
from crm_api.clients.schemas import ImportJobPublic
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import Services
from crm_api.platform.errors import NotFound

log = logging.getLogger(__name__)


async def start_import(
    session: AsyncSession, services: Services, user: User, filename: str, content: bytes
) -> ImportJob:
    job = ImportJob(user_id=user.id, filename=filename, status="running", errors=[])
    session.add(job)
    await session.commit()
    task = asyncio.create_task(run_import(services, job.id, user, filename, content))
    services.background.add(task)
    task.add_done_callback(services.background.discard)
    return job


async def job_for(session: AsyncSession, user: User, job_id: int) -> ImportJob:
    job = await session.get(ImportJob, job_id)
    if job is None or job.user_id != user.id:
        raise NotFound(f"import #{job_id} not found")
    return job


async def _progress(services: Services, job_id: int, user_id: int, **fields: object) -> None:
    async with services.sessions() as session:
        job = await session.get(ImportJob, job_id)
        assert job is not None
        for key, value in fields.items():
            setattr(job, key, value)
        await session.commit()
        public = ImportJobPublic.model_validate(job)
    await notifier.import_progress(services.hub, public, user_id)


async def run_import(
    services: Services, job_id: int, user: User, filename: str, content: bytes
) -> None:
    region = services.settings.default_region
    created = 0
    try:
        # Parsing is CPU work: in a thread, so that no other request waits for it.
        rows = await asyncio.to_thread(
            client_files.read_rows, filename, content, services.settings.import_max_rows
        )
        await _progress(services, job_id, user.id, total=len(rows))
        async with services.sessions() as session:

            async def validated(n: int) -> None:
                await _progress(services, job_id, user.id, processed=n)

            good, errors = await client_files.validate_rows(session, user, rows, region, validated)
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
        batch = services.settings.import_batch_rows
        for start in range(0, len(good), batch):
            async with services.sessions() as session:
                actor = await session.get(User, user.id)
                for _line, create in good[start : start + batch]:
                    await clients_domain.create_client(session, actor, create, region)
                await session.commit()
            created = min(start + batch, len(good))
            await _progress(services, job_id, user.id, created=created)
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
            message=f"import failed after {created} clients were imported: {exc}",
            finished_at=utcnow(),
        )
