"""Test data in one place."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import Role, User
from crm_api.accounts.service import hash_password, issue_token

PASSWORD = "test-password-1"
_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose: hash once for every test user
_seq = itertools.count(1)


@dataclass
class Actor:
    user: User
    token: str


async def make_user(
    session: AsyncSession, role: Role, *, extension: str | None = None, name: str | None = None
) -> Actor:
    n = next(_seq)
    user = User(
        username=f"{role.value}{n}",
        full_name=name or f"{role.value.title()} {n}",
        password_hash=_HASH,
        role=role,
        extension=extension,
        language="ru",
    )
    session.add(user)
    await session.flush()
    issued = await issue_token(session, user, kind="api", ttl=None)
    return Actor(user=user, token=issued.token)
