"""Test data in one place."""

from __future__ import annotations

import asyncio
import io
import itertools
import wave
from dataclasses import dataclass
from datetime import time
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.accounts.models import Role, User
from crm_api.accounts.service import hash_password, issue_token
from crm_api.calls.models import Call, Recording
from crm_api.schedules.models import Shift

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


def wav(seconds: float = 0.5) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x02" * int(8000 * seconds))
    return buf.getvalue()


async def make_recording(
    db: async_sessionmaker[AsyncSession],
    recordings_dir: Path,
    *,
    user_id: int | None,
    agents: list[str] | None = None,
    ringing: list[str] | None = None,
) -> tuple[int, bytes]:
    """An ended call taken by `user_id`, with a recording on disk: (recording id, audio)."""
    audio = wav()
    name = f"r{next(_seq)}.wav"

    def write() -> None:
        recordings_dir.mkdir(parents=True, exist_ok=True)
        (recordings_dir / name).write_bytes(audio)

    await asyncio.to_thread(write)
    async with db() as session:
        call = Call(
            pbx="pbx",
            pbx_call_id=name,
            direction="inbound",
            state="ended",
            ringing=ringing or [],
            agents=agents or [],
            user_id=user_id,
            talk_s=3.0,
        )
        session.add(call)
        await session.flush()
        rec = Recording(call_id=call.id, pbx_path=f"/spool/{name}", file_name=name)
        session.add(rec)
        await session.commit()
        return rec.id, audio


async def on_shift_all_week(session: AsyncSession, *users: User) -> None:
    """Round-the-clock shifts: the routing policy has these users on duty whenever asked."""
    for user in users:
        for weekday in range(7):
            session.add(Shift(user_id=user.id, weekday=weekday, starts=time(0), minutes=24 * 60))
    await session.flush()
