"""The composition root: builds the infrastructure once and hands it to every feature."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from crm_api.accounts import auth_http as auth
from crm_api.accounts import http as users
from crm_api.calls import http as calls
from crm_api.clients import files_http as imports
from crm_api.clients import http as clients
from crm_api.clients import views_http as views
from crm_api.clients.directories import http as directories
from crm_api.clients.timeline import http as communications
from crm_api.frames import Frame
from crm_api.messages import http as messages
from crm_api.platform import health, metrics_http, openapi
from crm_api.platform.boundary import KIB, BodyLimits, BoundaryGuard
from crm_api.platform.errors import AppError
from crm_api.platform.metrics import Metrics
from crm_api.platform.metrics_http import HttpTiming
from crm_api.platform.realtime import ws
from crm_api.platform.runtime import Feature, running_features, running_services
from crm_api.platform.security_headers import SecurityHeaders
from crm_api.platform.settings import Settings
from crm_api.sales import http as deals
from crm_api.sales import plans_http as plans
from crm_api.sales import reports_http as reports
from crm_api.schedules import http as schedules
from crm_api.tasks import http as tasks

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"


def _error(
    status: int, code: str, message: str, details: dict[str, object] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details or {}}}, status_code=status
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_request: Request, exc: AppError) -> JSONResponse:
        response = _error(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            fields.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
        names = ", ".join(f["field"] for f in fields)
        return _error(422, "validation_error", f"invalid fields: {names}", {"fields": fields})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = _error(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # 405 names the methods in `Allow`
        return response


def _mount_ui(app: FastAPI, dist: Path) -> None:
    """Serves the built web app; client-side routes fall back to index.html."""
    dist = dist.resolve()
    index = dist / "index.html"

    @app.get("/{path:path}", include_in_schema=False, response_model=None)
    def ui(path: str) -> FileResponse | JSONResponse:
        if path.startswith(("api/", "ws")):
            return _error(404, "not_found", f"/{path} not found")
        candidate = (dist / path).resolve()
        if path and candidate.is_file() and candidate.is_relative_to(dist):
            return FileResponse(candidate)
        if index.is_file():
            return FileResponse(index, headers={"Cache-Control": "no-cache"})
        return _error(404, "ui_not_built", "the web app is not built: run `make run`")


def _body_limits(settings: Settings) -> BodyLimits:
    """Anonymous routes take only what their form needs; an import takes a file."""
    return BodyLimits(
        routes={
            f"POST {API_PREFIX}/auth/login": 4 * KIB,
            f"POST {API_PREFIX}/clients/import": settings.import_max_bytes + 64 * KIB,
        }
    )


# The features in the order the OpenAPI document (and so the web app's typed client) lists
# them.
DOCUMENTED = (
    health,
    auth,
    users,
    directories,
    imports,
    clients,
    communications,
    views,
    calls,
    messages,
    deals,
    tasks,
    schedules,
    plans,
    reports,
)
# The same features in the order a request is matched against their routes, one route
# after another (a few µs each: 0.1 ms of every lookup from sixth place). The clients'
# routes (the lookup and the card on every call) early, after only the health probes
# (three routes) and the imports, whose `/clients/export` must win over
# `/clients/{client_id}`; the sign-in, the users and the directories (once a page) last.
_MATCHED_FIRST = (health, imports, clients)
_MATCHED_LAST = (directories, users, auth)
MATCHED = (
    *_MATCHED_FIRST,
    *(m for m in DOCUMENTED if m not in _MATCHED_FIRST + _MATCHED_LAST),
    *_MATCHED_LAST,
)


def _documented_routes() -> list[BaseRoute]:
    """The API's routes in the documented order, off an app that only lists them (built
    once, with the document)."""
    listing = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    for module in DOCUMENTED:
        listing.include_router(module.router, prefix=API_PREFIX)
    return listing.routes


def create_app(settings: Settings | None = None, features: tuple[Feature, ...] = ()) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(settings, metrics) as services:
            app.state.services = services
            async with running_features(services, features):
                yield

    app = FastAPI(
        title="Callcard",
        version="0.1.0",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        lifespan=lifespan,
    )
    _install_error_handlers(app)
    openapi.install(app, TypeAdapter(Frame), _documented_routes)
    app.add_middleware(BoundaryGuard, limits=_body_limits(settings))
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HttpTiming, metrics=metrics)
    # Each feature's router straight onto the app: a router nested in another is matched
    # once more on every request.
    for module in MATCHED:
        app.include_router(module.router, prefix=API_PREFIX)
    # Load balancers probe `/health` by habit: answer it, not with the web app's page.
    app.include_router(health.router, include_in_schema=False)
    app.include_router(ws.router)
    app.include_router(metrics_http.router)
    _mount_ui(app, settings.ui_dist)
    return app
