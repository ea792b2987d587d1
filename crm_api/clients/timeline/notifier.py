"""The only publisher of the timeline's frames, to every socket watching the card."""

from __future__ import annotations

from crm_api.clients.timeline.schemas import CommentPublic, CommunicationPublic
from crm_api.platform.realtime.hub import Hub


async def communication_created(
    hub: Hub, communication: CommunicationPublic, client_id: int
) -> None:
    await hub.notify(
        "communication.created",
        {"communication": communication.model_dump(mode="json")},
        client_id=client_id,
    )


async def communication_commented(
    hub: Hub, communication_id: int, client_id: int, comment: CommentPublic
) -> None:
    await hub.notify(
        "communication.commented",
        {"communication_id": communication_id, "comment": comment.model_dump(mode="json")},
        client_id=client_id,
    )
