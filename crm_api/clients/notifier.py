"""The only publisher of the clients feature's frames: what each carries, and who gets it."""

from __future__ import annotations

from typing import Literal

from crm_api.clients.schemas import ClientPublic, ImportJobPublic
from crm_api.platform.realtime.frames import FrameModel
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.schemas import ApiModel


class ClientUpdated(ApiModel):
    client: ClientPublic


class ClientUpdatedFrame(FrameModel):
    type: Literal["client.updated"] = "client.updated"
    data: ClientUpdated


class ImportProgressFrame(FrameModel):
    type: Literal["import.progress"] = "import.progress"
    data: ImportJobPublic


async def client_updated(hub: Hub, client: ClientPublic) -> None:
    """The card as it now is, to every socket watching it."""
    data = ClientUpdated(client=client).model_dump(mode="json")
    await hub.notify(ClientUpdatedFrame.name(), data, client_id=client.id)


async def import_progress(hub: Hub, job: ImportJobPublic, user_id: int) -> None:
    await hub.notify(ImportProgressFrame.name(), job.model_dump(mode="json"), users=[user_id])
