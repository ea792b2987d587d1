"""`/metrics` of an API worker and the middleware that times every HTTP request."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_api.platform.deps import ServicesDep
from crm_api.platform.metrics import CONTENT_TYPE, Metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus scrapes this; nginx keeps it off the public site (deploy/nginx)."""
    return Response(await services.metrics.render(), media_type=CONTENT_TYPE)


class HttpTiming:
    """Times each HTTP request by its route's name (`get_client`, not the path: one series
    per route, however many clients)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # the app raised before it answered

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = getattr(scope.get("route"), "name", None) or "unmatched"
            self.metrics.http_seconds.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - started
            )
