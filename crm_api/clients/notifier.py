"""The only publisher of the clients feature's frames: what each carries, and who gets it."""

from __future__ import annotations

from crm_api.clients.schemas import ClientPublic, ImportJobPublic
from crm_api.platform.realtime.hub import Hub


async def client_updated(hub: Hub, client: ClientPublic) -> None:
    """The card as it now is, to every socket watching it."""
    await hub.notify(
        "client.updated", {"client": client.model_dump(mode="json")}, client_id=client.id
    )


async def import_progress(hub: Hub, job: ImportJobPublic, user_id: int) -> None:
    await hub.notify("import.progress", job.model_dump(mode="json"), users=[user_id])
