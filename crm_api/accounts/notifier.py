"""The only publisher of the accounts feature's frames: `session.changed`, to the user's
own sockets, which then re-check their token and rights."""

from __future__ import annotations

from typing import Literal

from crm_api.platform.realtime.frames import FrameModel
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.schemas import ApiModel


class SessionChanged(ApiModel):
    user_id: int


class SessionChangedFrame(FrameModel):
    type: Literal["session.changed"] = "session.changed"
    data: SessionChanged


SESSION_CHANGED = SessionChangedFrame.name()


async def session_changed(hub: Hub, user_id: int) -> None:
    data = SessionChanged(user_id=user_id).model_dump(mode="json")
    await hub.notify(SESSION_CHANGED, data, users=[user_id])
