"""Users, their passwords (argon2), and opaque tokens for browser sessions and API clients.

Argon2 is slow on purpose, so it runs in a worker thread: logins must not stall every
other request on the event loop. Tokens: `session` (the browser's cookie; ends when idle
too long), `api` (a bearer token with an expiry, listed and revoked by its owner) and
`link` (minutes long, the only kind accepted in a `?token=` query)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import AuthToken, Role, User
from crm_api.platform.db.base import utcnow
from crm_api.platform.errors import NotFound

_hasher = PasswordHasher()
# Verifying against this keeps a login for an unknown user as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("callcard-timing-equalizer")
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password_off_loop(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def _verify_off_loop(password_hash: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime | None


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    user = await session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        await _verify_off_loop(_DUMMY_HASH, password)
        return None
    if not await _verify_off_loop(user.password_hash, password) or not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await hash_password_off_loop(password)
    return user


async def check_password(user: User, password: str) -> bool:
    return await _verify_off_loop(user.password_hash, password)


async def issue_token(
    session: AsyncSession, user: User, *, kind: str, ttl: timedelta | None, name: str | None = None
) -> IssuedToken:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + ttl if ttl else None
    session.add(
        AuthToken(
            user_id=user.id,
            token_hash=_digest(token),
            kind=kind,
            name=name,
            expires_at=expires_at,
            last_used_at=now,
        )
    )
    return IssuedToken(token=token, expires_at=expires_at)


@dataclass(frozen=True, slots=True)
class TokenOwner:
    user: User
    token_id: int
    kind: str


async def user_for_token(
    session: AsyncSession, token: str, *, idle: timedelta, kinds: frozenset[str] | None = None
) -> TokenOwner | None:
    """Whose live token this is. A session unused for `idle` has ended; use is written
    down at most once a minute (a request does not pay a write)."""
    row = await session.execute(
        select(User, AuthToken)
        .join(AuthToken, AuthToken.user_id == User.id)
        .where(AuthToken.token_hash == _digest(token))
    )
    found = row.first()
    if found is None:
        return None
    user, auth = found
    now = utcnow()
    if auth.expires_at is not None and auth.expires_at < now:
        return None
    if kinds is not None and auth.kind not in kinds:
        return None
    last = auth.last_used_at or auth.created_at
    if auth.kind == "session" and last < now - idle:
        return None
    if last < now - timedelta(minutes=1):
        auth.last_used_at = now
        await session.commit()
    return TokenOwner(user=user, token_id=auth.id, kind=auth.kind) if user.is_active else None


async def touch_session(session: AsyncSession, token: str) -> None:
    """The browser session behind an open socket is in use (an API or link token is not)."""
    await session.execute(
        update(AuthToken)
        .where(AuthToken.token_hash == _digest(token), AuthToken.kind == "session")
        .values(last_used_at=utcnow())
    )


async def revoke_token(session: AsyncSession, token: str) -> None:
    await session.execute(delete(AuthToken).where(AuthToken.token_hash == _digest(token)))


async def revoke_all(session: AsyncSession, user_id: int, *, keep: str | None = None) -> None:
    """Ends every session and token of the user (but `keep`, the one asking)."""
    query = delete(AuthToken).where(AuthToken.user_id == user_id)
    if keep is not None:
        query = query.where(AuthToken.token_hash != _digest(keep))
    await session.execute(query)


async def tokens_of(session: AsyncSession, user_id: int) -> list[AuthToken]:
    rows = await session.scalars(
        select(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.kind != "link")
        .order_by(AuthToken.created_at.desc(), AuthToken.id.desc())
    )
    return list(rows.all())


async def revoke_token_id(session: AsyncSession, user_id: int, token_id: int) -> bool:
    gone = await session.execute(
        delete(AuthToken).where(AuthToken.user_id == user_id, AuthToken.id == token_id)
    )
    return bool(getattr(gone, "rowcount", 0))


def digest_of(token: str) -> str:
    return _digest(token)


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    full_name: str,
    role: Role,
    extension: str | None = None,
    language: str = "ru",
) -> User:
    user = User(
        username=username.strip().lower(),
        password_hash=await hash_password_off_loop(password),
        full_name=full_name,
        role=role,
        extension=extension,
        language=language,
    )
    session.add(user)
    await session.flush()
    return user


async def list_users(session: AsyncSession) -> list[User]:
    return list((await session.scalars(select(User).order_by(User.full_name))).all())


async def keeps_an_admin(session: AsyncSession, user: User, role: Role, active: bool) -> bool:
    """Whether `user` may become `role` (active or not) and an active admin remain: the
    last one can be neither demoted nor deactivated, or nobody could manage users again."""
    if role is Role.ADMIN and active:
        return True
    others = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN, User.is_active.is_(True), User.id != user.id)
    )
    return bool(others)


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user #{user_id} not found")
    return user


async def sip_address_of(session: AsyncSession, extension: str) -> str | None:
    """The SIP URI on the profile of the user with `extension`, if they set one."""
    return await session.scalar(select(User.sip_address).where(User.extension == extension))
