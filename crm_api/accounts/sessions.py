"""Telling open sockets that a user's sessions or rights changed (logout, password change,
token revoked, deactivation, new role). Every API worker hears it through the bus; each
socket of that user then re-checks its own token and rights and closes when they ended."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from crm_api.platform.realtime.frames import FrameModel

if TYPE_CHECKING:
    from crm_api.platform.deps import Services


class SessionChanged(BaseModel):
    user_id: int


class SessionChangedFrame(FrameModel):
    type: Literal["session.changed"] = "session.changed"
    data: SessionChanged


SESSION_CHANGED = SessionChangedFrame.name()


async def end_sessions_of(services: Services, user_id: int) -> None:
    services.tokens.forget_user(user_id)
    data = SessionChanged(user_id=user_id).model_dump(mode="json")
    await services.hub.notify(SESSION_CHANGED, data, users=[user_id])
