"""The only publisher of the sales feature's frames."""

from __future__ import annotations

from typing import Literal

from crm_api.accounts.models import Role
from crm_api.platform.realtime.frames import FrameModel
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.schemas import ApiModel
from crm_api.sales.schemas import DealPublic

STAFF_ROLES = (Role.SUPERVISOR.value, Role.ADMIN.value)


class DealUpdated(ApiModel):
    deal: DealPublic


class DealUpdatedFrame(FrameModel):
    type: Literal["deal.updated"] = "deal.updated"
    data: DealUpdated


async def deal_updated(hub: Hub, deal: DealPublic, manager_id: int | None) -> None:
    """To the deal's manager, supervisors and admins, and sockets watching its card."""
    await hub.notify(
        DealUpdatedFrame.name(),
        DealUpdated(deal=deal).model_dump(mode="json"),
        users=[manager_id] if manager_id else [],
        roles=STAFF_ROLES,
        client_id=deal.client_id,
    )
