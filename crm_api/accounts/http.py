from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from sqlalchemy.exc import IntegrityError

from crm_api.accounts import audit
from crm_api.accounts import service as auth
from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.accounts.schemas import UserCreate, UserPublic, UserUpdate
from crm_api.accounts.sessions import end_sessions_of
from crm_api.platform.deps import ServicesDep, SessionDep, require
from crm_api.platform.errors import Conflict
from crm_api.platform.schemas import Id, Page

router = APIRouter(prefix="/users", tags=["users"])


# A null clears these; for the other fields it means "unchanged".
_CLEARABLE = frozenset({"extension", "sip_address"})


def _public_fields(user: User) -> dict[str, object]:
    return UserPublic.model_validate(user).model_dump(mode="json", exclude={"id"})


@router.get("", operation_id="list_users")
async def list_users(
    session: SessionDep, _user: Annotated[User, require(Permission.USERS_READ)]
) -> Page[UserPublic]:
    users = await auth.list_users(session)
    total = len(users)
    return Page(
        items=[UserPublic.model_validate(u) for u in users], total=total, page=1, page_size=total
    )


@router.post("", status_code=201, operation_id="create_user")
async def create_user(
    body: UserCreate,
    session: SessionDep,
    admin: Annotated[User, require(Permission.USERS_MANAGE)],
) -> UserPublic:
    try:
        user = await auth.create_user(
            session,
            username=body.username,
            password=body.password,
            full_name=body.full_name,
            role=body.role,
            extension=body.extension,
            language=body.language,
        )
    except IntegrityError as exc:
        raise Conflict("username or extension already taken").with_code("user_exists") from exc
    user.sip_address = body.sip_address
    audit.record(
        session,
        admin,
        action="create",
        entity="user",
        entity_id=user.id,
        client_id=None,
        changes=audit.diff({}, _public_fields(user)),
    )
    await session.commit()
    return UserPublic.model_validate(user)


@router.patch("/{user_id}", operation_id="update_user")
async def update_user(
    user_id: Id,
    body: UserUpdate,
    session: SessionDep,
    services: ServicesDep,
    admin: Annotated[User, require(Permission.USERS_MANAGE)],
) -> UserPublic:
    user = await auth.get_user(session, user_id)
    role, active = body.role or user.role, body.is_active
    if not await auth.keeps_an_admin(
        session, user, role, user.is_active if active is None else active
    ):
        raise Conflict("the last active admin can be neither demoted nor deactivated").with_code(
            "last_admin"
        )
    before = _public_fields(user)
    for field in body.model_fields_set - {"password"}:
        value = getattr(body, field)
        if value is not None or field in _CLEARABLE:
            setattr(user, field, value)
    try:  # before the reset below, whose query would flush a taken extension unguarded
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("extension already taken").with_code("user_exists") from exc
    if body.password:  # an admin's reset ends every session and token of the user
        user.password_hash = await auth.hash_password_off_loop(body.password)
        await auth.revoke_all(session, user.id)
    audit.record(
        session,
        admin,
        action="update",
        entity="user",
        entity_id=user.id,
        client_id=None,
        changes=audit.diff(before, _public_fields(user)),
    )
    await session.commit()
    await end_sessions_of(services, user.id)  # a new role or a deactivation applies at once
    return UserPublic.model_validate(user)
