from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from sqlalchemy import text

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.platform.deps import ServicesDep, SessionDep, require
from crm_api.platform.errors import Unavailable
from crm_api.platform.link_status import LinksPublic

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


@router.get("/links", operation_id="list_links")
async def links(
    services: ServicesDep, _user: Annotated[User, require(Permission.SELF)]
) -> LinksPublic:
    """The PBX, SMSC and SMTP links: configured or not, up or down (`link.status` frames
    tell each change)."""
    return await services.link_status.read()
