"""Who may listen to a call's recording: staff who review calls, and the users who took
part in the call (as recorded at the time: each agent of a transfer). Not by extension:
a phone that only rang did not take part, and whoever gets that extension later was not
on the call."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission, allowed
from crm_api.calls.models import Call, CallParticipant


async def may_hear(session: AsyncSession, user: User, call: Call) -> bool:
    if allowed(user.role, Permission.CALLS_REVIEW) or call.user_id == user.id:
        return True
    took_part = exists().where(
        CallParticipant.call_id == call.id, CallParticipant.user_id == user.id
    )
    return bool(await session.scalar(select(took_part)))
