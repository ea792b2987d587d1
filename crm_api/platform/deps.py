"""What routes get from the app: the services, a session, the authorized user."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import APIKeyCookie, HTTPBearer
from fastapi.security.base import SecurityBase
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission, allowed
from crm_api.accounts.service import user_for_token
from crm_api.accounts.throttle import LoginThrottle
from crm_api.accounts.token_cache import TokenCache
from crm_api.platform.db.direct import Queryable, connect_direct
from crm_api.platform.errors import Forbidden, Unauthorized
from crm_api.platform.link_status import LinkBoard
from crm_api.platform.links import Links
from crm_api.platform.metrics import Metrics
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.settings import Settings

SESSION_COOKIE = "callcard_session"


@dataclass
class Services:
    """Built once by the composition root (app.py) and handed to every feature."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    reads: async_sessionmaker[AsyncSession]  # for requests that only read (no transaction)
    hub: Hub
    link_status: LinkBoard  # PBX, SMSC, SMTP: configured, up or down, for every user
    redis: Redis | None = None
    links: Links = field(default_factory=Links)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    tokens: TokenCache = field(default_factory=TokenCache)
    metrics: Metrics = field(default_factory=Metrics)
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)


def services_of(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services


async def get_services(conn: HTTPConnection) -> Services:
    # async: FastAPI runs a plain function dependency in its thread pool, a thread hop
    # on every request for an attribute read.
    return services_of(conn)


ServicesDep = Annotated[Services, Depends(get_services)]


# The sessions and `Authorize` read the services off the app, not as a sub-dependency:
# FastAPI solves each sub-dependency (cached or not) anew on every request.
async def get_session(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    async with services_of(conn).sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_read_session(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    async with services_of(conn).reads() as session:
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]


@dataclass(frozen=True, slots=True)
class ReadAccess:
    """What a read-only route of the hot path gets from its one dependency: who asks, and
    where its reads go (`async with access.db() as db:`, only around them)."""

    user: User
    services: Services

    def db(self) -> AbstractAsyncContextManager[Queryable]:
        """A direct connection (PostgreSQL) or a read session, back to the pool at the end."""
        return connect_direct(self.services.engine, self.services.reads)


# How a request logs in, as the OpenAPI document says: the session cookie or a bearer token.
LOGIN: tuple[SecurityBase, ...] = (
    APIKeyCookie(name=SESSION_COOKIE, auto_error=False),
    HTTPBearer(auto_error=False),
)


# Where a header cannot be sent (a WebSocket from a browser, an <audio src>), a short-lived
# `link` token may ride in the query; anywhere else a query token would end up in logs.
_QUERY_TOKEN_PATHS = ("/ws", "/api/v1/recordings/")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Credential:
    token: str
    source: str  # header | cookie | query


def credential_of(conn: HTTPConnection) -> Credential | None:
    """The bearer header, else the session cookie, else (on the paths above) `?token=`."""
    auth = conn.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
        return Credential(token, "header") if token else None
    cookie = conn.cookies.get(SESSION_COOKIE)
    if cookie:
        return Credential(cookie, "cookie")
    query = conn.query_params.get("token")
    if query and conn.url.path.startswith(_QUERY_TOKEN_PATHS):
        return Credential(query, "query")
    return None


def token_of(conn: HTTPConnection) -> str | None:
    found = credential_of(conn)
    return found.token if found else None


def same_origin(conn: HTTPConnection, settings: Settings) -> bool:
    """CSRF defence for cookie-authenticated writes and the WebSocket handshake: the page
    that sent it is ours (Origin, or Referer when a browser sends no Origin)."""
    origin = conn.headers.get("origin") or conn.headers.get("referer")
    if not origin or origin == "null":
        return False
    parts = urlsplit(origin)
    here = conn.headers.get("host", "")
    return parts.netloc == here or f"{parts.scheme}://{parts.netloc}" in settings.allowed_origins


class Authorize:
    """The dependency every non-public route carries: who is asking, and may they.

    The OpenAPI document gives each route that carries one the two ways in, `LOGIN`
    (`platform/openapi.py`): as sub-dependencies of this one, FastAPI solved both on
    every request (~30 µs each) only for the document's sake."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request) -> User:
        """The user, detached from any session: read it, do not change it."""
        services = services_of(request)
        found = credential_of(request)
        user = await authorized_user(services, found.token, found.source) if found else None
        if user is None or found is None:
            raise Unauthorized("log in first")
        if (
            found.source == "cookie"
            and request.method not in _SAFE_METHODS
            and not same_origin(request, services.settings)
        ):
            raise Forbidden("the request did not come from this site").with_code("csrf")
        if not allowed(user.role, self.permission):
            raise Forbidden(f"a {user.role} may not do this ({self.permission})")
        return user


async def authorized_user(services: Services, token: str, source: str = "header") -> User | None:
    key = f"{source}:{token}" if source == "query" else token
    user = services.tokens.get(key)
    if user is None:
        idle = timedelta(minutes=services.settings.session_idle_minutes)
        kinds = _LINK_ONLY if source == "query" else None
        async with services.sessions() as session:
            owner = await user_for_token(session, token, idle=idle, kinds=kinds)
            if owner is not None:
                user = owner.user
                session.expunge(user)
                services.tokens.put(key, user)
    return user


_LINK_ONLY = frozenset({"link"})


def require(permission: Permission) -> Any:
    return Depends(Authorize(permission))


def required_permission(dependant: Dependant) -> Permission | None:
    """What the `Authorize` among a route's dependencies asks for (None: a public route)."""
    for dep in dependant.dependencies:
        if isinstance(dep.call, Authorize):
            return dep.call.permission
        found = required_permission(dep)
        if found is not None:
            return found
    return None


class AuthorizeRead(Authorize):
    """`Authorize` and the services as one dependency: on the lookup and the card, solving
    a dependency each for the session, the services and the user cost as much CPU as the
    rest of the request beyond the query. It returns, it does not yield the connection:
    FastAPI runs a generator dependency in an exit stack with a shielded exit (~30 µs of
    every lookup), and the route holds a connection only around its reads."""

    async def __call__(self, request: Request) -> ReadAccess:  # type: ignore[override]
        return ReadAccess(await super().__call__(request), services_of(request))


def require_reading(permission: Permission) -> Any:
    return Depends(AuthorizeRead(permission))
