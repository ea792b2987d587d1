from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from crm_api.platform.deps import ServicesDep, SessionDep
from crm_api.platform.errors import Unavailable

router = APIRouter(tags=["health"])


@router.get("/health", operation_id="health")
async def health(session: SessionDep, services: ServicesDep) -> dict[str, str]:
    """Liveness for load balancers: the database answers (and Redis when configured)."""
    try:
        await session.execute(text("SELECT 1"))
        if services.redis is not None:
            await services.redis.ping()
    except Exception as exc:
        raise Unavailable(f"storage unavailable: {exc.__class__.__name__}") from exc
    return {"status": "ok"}
