from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Request, Response

from crm_api.accounts import service as auth
from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.accounts.schemas import (
    LoginRequest,
    LoginResponse,
    ProfileUpdate,
    TokenCreate,
    TokenIssued,
    UserPublic,
)
from crm_api.platform.deps import SESSION_COOKIE, ServicesDep, SessionDep, require, token_of
from crm_api.platform.errors import Unauthorized

router = APIRouter(prefix="/auth", tags=["auth"])
Me = Annotated[User, require(Permission.SELF)]


@router.post("/login", operation_id="login")
async def login(
    body: LoginRequest, response: Response, session: SessionDep, services: ServicesDep
) -> LoginResponse:
    user = await auth.authenticate(session, body.username, body.password)
    if user is None:
        raise Unauthorized("wrong username or password").with_code("invalid_credentials")
    ttl = timedelta(hours=services.settings.session_ttl_hours)
    issued = await auth.issue_token(session, user, kind="session", ttl=ttl)
    await session.commit()
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=services.settings.cookie_secure,
    )
    return LoginResponse(user=UserPublic.model_validate(user), token=issued.token)


@router.post("/logout", status_code=204, operation_id="logout")
async def logout(
    request: Request, response: Response, session: SessionDep, services: ServicesDep, _me: Me
) -> None:
    token = token_of(request)
    if token:
        await auth.revoke_token(session, token)
        await session.commit()
        services.tokens.forget_token(token)
    response.delete_cookie(SESSION_COOKIE)


@router.get("/me", operation_id="get_me")
async def me(user: Me) -> UserPublic:
    return UserPublic.model_validate(user)


@router.patch("/me", operation_id="update_me")
async def update_me(
    body: ProfileUpdate, me: Me, session: SessionDep, services: ServicesDep
) -> UserPublic:
    user = await auth.get_user(session, me.id)
    for field in body.model_fields_set:
        value = getattr(body, field)
        if value is not None:
            setattr(user, field, value)
    await session.commit()
    services.tokens.forget_user(user.id)
    return UserPublic.model_validate(user)


@router.post("/tokens", status_code=201, operation_id="create_api_token")
async def create_token(body: TokenCreate, user: Me, session: SessionDep) -> TokenIssued:
    """A bearer token for an API client (no expiry; revoke with logout using it)."""
    issued = await auth.issue_token(session, user, kind="api", ttl=None, name=body.name)
    await session.commit()
    return TokenIssued(token=issued.token, expires_at=issued.expires_at)
