"""The card of a number in brief, for the lookup softphones and integrations call on
every ring (its target is 2 ms).

One prebuilt Core statement and no ORM objects: for one row, setting up the ORM's eager
loads of a card's seven relations costs more than the query itself. What it answers is
what `presenters.client_summary` makes of a card loaded with `clients.ONE_CARD_LOAD`."""

from __future__ import annotations

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crm_api.accounts.models import User
from crm_api.accounts.permissions import may_see_client_of
from crm_api.clients.directories.models import ClientGroup, LeadSource, Segment
from crm_api.clients.directories.schemas import DirectoryItem
from crm_api.clients.models import Client, ClientEmail, ClientPhone, client_group_links
from crm_api.clients.schemas import ClientSummary
from crm_api.platform.errors import Forbidden
from crm_api.platform.schemas import UserRef

_company = aliased(Client)
_manager = aliased(User)
_dialled = aliased(ClientPhone)
_primary_phone = (
    select(ClientPhone.e164)
    .where(ClientPhone.client_id == Client.id)
    .order_by(ClientPhone.position)
    .limit(1)
    .scalar_subquery()
)
_primary_email = (
    select(ClientEmail.email)
    .where(ClientEmail.client_id == Client.id)
    .order_by(ClientEmail.position)
    .limit(1)
    .scalar_subquery()
)
# One row per group of the card (one row with no group when it has none).
_BY_PHONE = (
    select(
        Client.id,
        Client.kind,
        Client.name,
        Client.company_id,
        _company.name.label("company_name"),
        _primary_phone.label("primary_phone"),
        _primary_email.label("primary_email"),
        Client.manager_id,
        _manager.full_name.label("manager_name"),
        Segment.id.label("segment_id"),
        Segment.name.label("segment_name"),
        LeadSource.id.label("lead_source_id"),
        LeadSource.name.label("lead_source_name"),
        ClientGroup.id.label("group_id"),
        ClientGroup.name.label("group_name"),
        ClientGroup.color.label("group_color"),
        Client.sms_opted_out,
        Client.created_at,
        Client.updated_at,
    )
    .select_from(_dialled)
    .join(Client, Client.id == _dialled.client_id)
    .outerjoin(_company, _company.id == Client.company_id)
    .outerjoin(_manager, _manager.id == Client.manager_id)
    .outerjoin(Segment, Segment.id == Client.segment_id)
    .outerjoin(LeadSource, LeadSource.id == Client.lead_source_id)
    .outerjoin(client_group_links, client_group_links.c.client_id == Client.id)
    .outerjoin(ClientGroup, ClientGroup.id == client_group_links.c.group_id)
    .where(_dialled.e164 == bindparam("e164"))
)


async def summary_by_phone(session: AsyncSession, actor: User, e164: str) -> ClientSummary | None:
    """The card whose number this is, if `actor` may see it (Forbidden otherwise)."""
    rows = (await session.execute(_BY_PHONE, {"e164": e164})).all()
    if not rows:
        return None
    card = rows[0]
    if not may_see_client_of(actor, card.manager_id):
        raise Forbidden(
            f"client #{card.id} belongs to another manager", details={"client_id": card.id}
        )
    return ClientSummary(
        id=card.id,
        kind=card.kind,
        name=card.name,
        company_id=card.company_id,
        company_name=card.company_name,
        primary_phone=card.primary_phone,
        primary_email=card.primary_email,
        manager=UserRef(id=card.manager_id, full_name=card.manager_name)
        if card.manager_id is not None
        else None,
        groups=[_group(row) for row in rows if row.group_id is not None],
        segment=DirectoryItem(id=card.segment_id, name=card.segment_name)
        if card.segment_id is not None
        else None,
        lead_source=DirectoryItem(id=card.lead_source_id, name=card.lead_source_name)
        if card.lead_source_id is not None
        else None,
        sms_opted_out=card.sms_opted_out,
        created_at=card.created_at,
        updated_at=card.updated_at,
    )


def _group(row: Row[tuple[object, ...]]) -> DirectoryItem:
    return DirectoryItem(id=row.group_id, name=row.group_name, color=row.group_color)
