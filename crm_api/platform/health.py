from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy import text

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.platform.deps import Services, ServicesDep, SessionDep, require
from crm_api.platform.errors import Unavailable
from crm_api.platform.realtime.outage import describe
from crm_api.platform.schemas import LinksPublic

router = APIRouter(tags=["health"])
PROBE_S = 2.0  # a dependency slower than this to answer counts as down


@router.get("/health", operation_id="health")
async def health(session: SessionDep, services: ServicesDep) -> dict[str, Any]:
    """Liveness for load balancers: the database answers (and Redis when configured), and
    every event consumer of this worker consumes (a stuck one is a worker to restart)."""
    try:
        await asyncio.wait_for(session.execute(text("SELECT 1")), PROBE_S)
        if services.redis is not None:
            await asyncio.wait_for(services.redis.ping(), PROBE_S)
    except Exception as exc:
        raise Unavailable(f"storage unavailable: {exc.__class__.__name__}") from exc
    stalled = [c.status.as_dict() for c in services.links.consumers if not c.status.ok]
    if stalled:
        raise Unavailable("an event consumer is not consuming", details={"consumers": stalled})
    return {"status": "ok"}


@router.get("/links", operation_id="list_links")
async def links(
    services: ServicesDep, _user: Annotated[User, require(Permission.SELF)]
) -> LinksPublic:
    """The PBX, SMSC and SMTP links: configured or not, up or down (`link.status` frames
    tell each change)."""
    return await services.link_status.read()


@router.get("/health/ready", operation_id="health_ready", response_model=None)
async def ready(services: ServicesDep) -> JSONResponse:
    """Readiness, for people and monitors: each event consumer and how far behind its
    stream is. 503 when one does not consume or an event has waited too long."""
    report = await consumers_report(services)
    code = 200 if report["status"] == "ok" else 503
    return JSONResponse(report, status_code=code)


async def consumers_report(services: Services) -> dict[str, Any]:
    limit = services.settings.stream_lag_alert_s
    problems: list[str] = []
    consumers = []
    for consumer in services.links.consumers:
        entry: dict[str, Any] = consumer.status.as_dict()
        if not consumer.status.ok:
            problems.append(f"{consumer.name}: not consuming ({entry['error']})")
        try:
            backlog = await asyncio.wait_for(consumer.backlog(), PROBE_S)
        except (RedisError, OSError) as exc:
            entry["backlog"] = None
            problems.append(f"{consumer.name}: backlog unknown ({describe(exc)})")
        else:
            entry["backlog"] = backlog.as_dict()
            entry["lagging"] = backlog.oldest_age_s > limit
            if entry["lagging"]:
                problems.append(
                    f"{consumer.name}: an event has waited {backlog.oldest_age_s:.0f} s"
                    f" ({backlog.pending} pending, {backlog.unread} unread)"
                )
        consumers.append(entry)
    status = "degraded" if problems else "ok"
    return {"status": status, "problems": problems, "consumers": consumers}
