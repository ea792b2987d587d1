"""Users, their passwords (argon2), and opaque tokens for browser sessions and API clients."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
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


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime | None


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    user = await session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(user.password_hash, password) or not user.is_active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


async def issue_token(
    session: AsyncSession, user: User, *, kind: str, ttl: timedelta | None, name: str | None = None
) -> IssuedToken:
    token = secrets.token_urlsafe(32)
    expires_at = utcnow() + ttl if ttl else None
    session.add(
        AuthToken(
            user_id=user.id, token_hash=_digest(token), kind=kind, name=name, expires_at=expires_at
        )
    )
    return IssuedToken(token=token, expires_at=expires_at)


async def user_for_token(session: AsyncSession, token: str) -> User | None:
    row = await session.execute(
        select(User, AuthToken.expires_at)
        .join(AuthToken, AuthToken.user_id == User.id)
        .where(AuthToken.token_hash == _digest(token))
    )
    found = row.first()
    if found is None:
        return None
    user, expires_at = found
    if expires_at is not None and expires_at < utcnow():
        return None
    return user if user.is_active else None


async def revoke_token(session: AsyncSession, token: str) -> None:
    await session.execute(delete(AuthToken).where(AuthToken.token_hash == _digest(token)))


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
        password_hash=hash_password(password),
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


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"user #{user_id} not found")
    return user
