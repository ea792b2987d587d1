"""What routes get from the app: the services, a session, the authorized user."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission, allowed
from crm_api.accounts.service import user_for_token
from crm_api.accounts.token_cache import TokenCache
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


async def get_services(conn: HTTPConnection) -> Services:
    # async: FastAPI runs a plain function dependency in its thread pool, a thread hop
    # on every request for an attribute read.
    services: Services = conn.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_read_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.reads() as session:
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]

_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def token_of(conn: HTTPConnection) -> str | None:
    """The session cookie or the bearer token (header, or `?token=` for WebSockets)."""
    auth = conn.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return conn.cookies.get(SESSION_COOKIE) or conn.query_params.get("token")


class Authorize:
    """The dependency every non-public route carries: who is asking, and may they."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(
        self,
        request: Request,
        services: ServicesDep,
        _c: Annotated[str | None, Depends(_cookie)] = None,
        _b: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    ) -> User:
        """The user, detached from any session: read it, do not change it."""
        token = token_of(request)
        user = await authorized_user(services, token) if token else None
        if user is None:
            raise Unauthorized("log in first")
        if not allowed(user.role, self.permission):
            raise Forbidden(f"a {user.role} may not do this ({self.permission})")
        return user


async def authorized_user(services: Services, token: str) -> User | None:
    user = services.tokens.get(token)
    if user is None:
        async with services.sessions() as session:
            user = await user_for_token(session, token)
            if user is not None:
                session.expunge(user)
                services.tokens.put(token, user)
    return user


def require(permission: Permission) -> Any:
    return Depends(Authorize(permission))
