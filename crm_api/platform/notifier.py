"""The only publisher of the platform's frames: `link.status`, a link to the outside that
went up or down, to every user. (The socket's own frames are `realtime/ws.py`'s.)"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from crm_api.accounts.models import Role
from crm_api.platform.realtime.frames import FrameModel
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.schemas import LinkName, LinkPublic


class LinkStatus(BaseModel):
    """One link changed."""

    name: LinkName
    link: LinkPublic


class LinkStatusFrame(FrameModel):
    type: Literal["link.status"] = "link.status"
    data: LinkStatus


async def link_changed(hub: Hub, name: LinkName, link: LinkPublic) -> None:
    data = LinkStatus(name=name, link=link).model_dump(mode="json")
    await hub.notify(LinkStatusFrame.name(), data, roles=[r.value for r in Role])
