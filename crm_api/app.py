"""The composition root: builds the infrastructure once and hands it to every feature."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from redis.asyncio import Redis
from starlette.exceptions import HTTPException as StarletteHTTPException

from crm_api.db.session import make_engine, make_sessionmaker
from crm_api.deps import Services
from crm_api.errors import AppError
from crm_api.realtime.bus import Bus, InProcessBus, RedisBus
from crm_api.realtime.hub import Hub
from crm_api.routes import (
    auth,
    calls,
    clients,
    communications,
    directories,
    health,
    imports,
    messages,
    users,
    views,
    ws,
)
from crm_api.settings import Settings

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"

# Features that run beside the API (call events, SMS outbox, reminders) plug in here:
# each gets the Services at start-up and returns a coroutine to stop it.
Feature = Callable[[Services], Awaitable[Callable[[], Awaitable[None]]]]


def _error(
    status: int, code: str, message: str, details: dict[str, object] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details or {}}}, status_code=status
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_request: Request, exc: AppError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.details)

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
        return _error(exc.status_code, code, str(exc.detail))


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


def create_app(settings: Settings | None = None, features: tuple[Feature, ...] = ()) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        redis = Redis.from_url(settings.redis_url, protocol=2) if settings.redis_url else None
        bus: Bus = (
            RedisBus(redis, backlog=settings.ws_backlog * 10)
            if redis is not None
            else InProcessBus(backlog=settings.ws_backlog * 10)
        )
        hub = Hub(bus)
        await hub.start()
        services = Services(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            hub=hub,
            redis=redis,
        )
        app.state.services = services
        stops = [await start(services) for start in features]
        try:
            yield
        finally:
            for stop in reversed(stops):
                await stop()
            for task in list(services.background):
                task.cancel()
            await hub.stop()
            await bus.close()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Callcard",
        version="0.1.0",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        lifespan=lifespan,
    )
    _install_error_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    for module in (
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
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(ws.router)
    _mount_ui(app, settings.ui_dist)
    return app
