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
    PasswordChange,
    ProfileUpdate,
    TokenCreate,
    TokenIssued,
    TokenPublic,
    UserPublic,
)
from crm_api.accounts.sessions import end_sessions_of
from crm_api.accounts.throttle import Key
from crm_api.platform.deps import (
    SESSION_COOKIE,
    ServicesDep,
    SessionDep,
    require,
    same_origin,
    token_of,
)
from crm_api.platform.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from crm_api.platform.schemas import ErrorResponse, Id, ItemList

router = APIRouter(prefix="/auth", tags=["auth"])
Me = Annotated[User, require(Permission.SELF)]


@router.post(
    "/login",
    operation_id="login",
    responses={429: {"model": ErrorResponse, "description": "too many wrong passwords"}},
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    services: ServicesDep,
) -> LoginResponse:
    if request.headers.get("origin") and not same_origin(request, services.settings):
        raise Forbidden("the login did not come from this site").with_code("csrf")
    settings = services.settings
    account = Key(f"user:{body.username.strip().lower()}", settings.login_free_failures)
    address = Key(
        f"addr:{request.client.host if request.client else '-'}",
        settings.login_free_failures_per_address,
    )
    throttle = services.login_throttle
    wait = await throttle.wait_s([account, address])
    if wait:
        raise TooManyRequests(
            f"too many wrong passwords; try again in {wait} s", retry_after=wait
        ).with_code("login_throttled")
    user = await auth.authenticate(session, body.username, body.password)
    if user is None:
        await throttle.failed([account, address])
        raise Unauthorized("wrong username or password").with_code("invalid_credentials")
    await throttle.succeeded(account)
    ttl = timedelta(hours=services.settings.session_ttl_hours)
    issued = await auth.issue_token(session, user, kind="session", ttl=ttl)
    await session.commit()
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        # Behind HTTPS (or in production, always) the cookie never travels in clear text.
        secure=settings.cookie_secure or settings.is_production or request.url.scheme == "https",
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
        await end_sessions_of(services, _me.id)  # its sockets close
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


@router.post("/password", status_code=204, operation_id="change_password")
async def change_password(
    body: PasswordChange, request: Request, me: Me, session: SessionDep, services: ServicesDep
) -> None:
    """A new password ends every other session and API token of this user."""
    user = await auth.get_user(session, me.id)
    if not await auth.check_password(user, body.current_password):
        raise InvalidInput("current_password", "wrong password").with_code("wrong_password")
    user.password_hash = await auth.hash_password_off_loop(body.new_password)
    await auth.revoke_all(session, user.id, keep=token_of(request))
    await session.commit()
    await end_sessions_of(services, user.id)


@router.get("/tokens", operation_id="list_tokens")
async def list_tokens(request: Request, me: Me, session: SessionDep) -> ItemList[TokenPublic]:
    """This user's browser sessions and API tokens."""
    current = token_of(request)
    mine = auth.digest_of(current) if current else None
    return ItemList(
        items=[
            TokenPublic.model_validate(t).model_copy(update={"current": t.token_hash == mine})
            for t in await auth.tokens_of(session, me.id)
        ]
    )


@router.delete("/tokens/{token_id}", status_code=204, operation_id="revoke_token")
async def revoke_token(token_id: Id, me: Me, session: SessionDep, services: ServicesDep) -> None:
    if not await auth.revoke_token_id(session, me.id, token_id):
        raise NotFound(f"token #{token_id} not found")
    await session.commit()
    await end_sessions_of(services, me.id)


@router.post("/tokens", status_code=201, operation_id="create_api_token")
async def create_token(
    body: TokenCreate, user: Me, session: SessionDep, services: ServicesDep
) -> TokenIssued:
    """A bearer token for an API client; it expires (at most CALLCARD_API_TOKEN_DAYS)."""
    ttl = timedelta(days=min(body.days, services.settings.api_token_days))
    issued = await auth.issue_token(session, user, kind="api", ttl=ttl, name=body.name)
    await session.commit()
    return TokenIssued(token=issued.token, expires_at=issued.expires_at)


@router.post("/link-token", status_code=201, operation_id="create_link_token")
async def create_link_token(user: Me, session: SessionDep, services: ServicesDep) -> TokenIssued:
    """A token of a few minutes for `?token=` where no header can be sent: the WebSocket
    and recording URLs (no other route takes a query token)."""
    ttl = timedelta(minutes=services.settings.link_token_minutes)
    issued = await auth.issue_token(session, user, kind="link", ttl=ttl, name="link")
    await session.commit()
    return TokenIssued(token=issued.token, expires_at=issued.expires_at)
