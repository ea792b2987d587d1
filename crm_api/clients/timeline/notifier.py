"""The only publisher of the timeline's frames, to every socket watching the card."""

from __future__ import annotations

from typing import Literal

from crm_api.clients.timeline.schemas import CommentPublic, CommunicationPublic
from crm_api.platform.realtime.frames import FrameModel
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.schemas import ApiModel


class CommunicationCreated(ApiModel):
    communication: CommunicationPublic


class CommunicationCommented(ApiModel):
    communication_id: int
    comment: CommentPublic


class CommunicationCreatedFrame(FrameModel):
    type: Literal["communication.created"] = "communication.created"
    data: CommunicationCreated


class CommunicationCommentedFrame(FrameModel):
    type: Literal["communication.commented"] = "communication.commented"
    data: CommunicationCommented


async def communication_created(
    hub: Hub, communication: CommunicationPublic, client_id: int
) -> None:
    data = CommunicationCreated(communication=communication).model_dump(mode="json")
    await hub.notify(CommunicationCreatedFrame.name(), data, client_id=client_id)


async def communication_commented(
    hub: Hub, communication_id: int, client_id: int, comment: CommentPublic
) -> None:
    data = CommunicationCommented(communication_id=communication_id, comment=comment)
    await hub.notify(
        CommunicationCommentedFrame.name(), data.model_dump(mode="json"), client_id=client_id
    )
