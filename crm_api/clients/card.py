"""The whole card (`ClientPublic`): the card in brief (`summary.py`) and the rest of the
client, its phones, e-mails and contact persons.

Core statements built once and no ORM objects, as for the card in brief: loading the
card's seven relations and its contacts into ORM objects was nearly half of the card
page's CPU. Three round trips: the summary, the card with its contact persons, and every
phone and e-mail of them."""

from __future__ import annotations

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    bindparam,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import aliased

from crm_api.accounts.models import User
from crm_api.accounts.permissions import may_see_client_of
from crm_api.clients import summary as summaries
from crm_api.clients.models import Client, ClientEmail, ClientPhone
from crm_api.clients.schemas import (
    ClientPublic,
    ClientSummary,
    ContactPerson,
    EmailPublic,
    PhonePublic,
)
from crm_api.clients.types import DateIn
from crm_api.platform.db.direct import Queryable, core_rows
from crm_api.platform.errors import Forbidden, NotFound
from crm_api.platform.schemas import user_ref_of

_created_by = aliased(User)
_updated_by = aliased(User)
# The card (id = :client_id) and its contact persons (company_id = :client_id).
_PEOPLE = (
    select(
        Client.id,
        Client.company_id,
        Client.name,
        Client.position,
        Client.address,
        Client.birthday,
        Client.dates,
        Client.custom_fields,
        Client.created_by_id,
        _created_by.full_name.label("created_by_name"),
        Client.updated_by_id,
        _updated_by.full_name.label("updated_by_name"),
    )
    .outerjoin(_created_by, _created_by.id == Client.created_by_id)
    .outerjoin(_updated_by, _updated_by.id == Client.updated_by_id)
    .where(or_(Client.id == bindparam("client_id"), Client.company_id == bindparam("client_id")))
    .order_by(Client.name)
)
_ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
# Phones and e-mails of those people in one statement, each in its card's order.
_CONTACTS: CompoundSelect = union_all(
    select(
        ClientPhone.client_id,
        literal("phone").label("what"),
        ClientPhone.position,
        ClientPhone.id,
        ClientPhone.e164.label("value"),
        ClientPhone.raw,
        ClientPhone.label,
    ).where(ClientPhone.client_id.in_(_ids)),
    select(
        ClientEmail.client_id,
        literal("email"),
        ClientEmail.position,
        ClientEmail.id,
        ClientEmail.email,
        null(),
        ClientEmail.label,
    ).where(ClientEmail.client_id.in_(_ids)),
).order_by("position", "id")


async def card_for(db: Queryable, actor: User, client_id: int) -> ClientPublic:
    """The whole card, if `actor` may see it (NotFound, Forbidden otherwise)."""
    summary = await summaries.find_summary(db, client_id)
    if summary is None:
        raise NotFound(f"client #{client_id} not found", details={"client_id": client_id})
    if not may_see_client_of(actor, summary.manager.id if summary.manager else None):
        raise Forbidden(
            f"client #{client_id} belongs to another manager", details={"client_id": client_id}
        )
    return await _whole(db, summary)


async def card_of(db: Queryable, client_id: int) -> ClientPublic:
    """The whole card of an existing client."""
    return await _whole(db, await summaries.summary_of(db, client_id))


async def _whole(db: Queryable, summary: ClientSummary) -> ClientPublic:
    people = await core_rows(db, _PEOPLE, {"client_id": summary.id})
    phones: dict[int, list[PhonePublic]] = {row.id: [] for row in people}
    emails: dict[int, list[EmailPublic]] = {row.id: [] for row in people}
    for c in await core_rows(db, _CONTACTS, {"ids": list(phones)}):
        if c.what == "phone":
            phones[c.client_id].append(PhonePublic(id=c.id, e164=c.value, raw=c.raw, label=c.label))
        else:
            emails[c.client_id].append(EmailPublic(id=c.id, email=c.value, label=c.label))
    (client,) = (row for row in people if row.id == summary.id)
    return ClientPublic(
        **summary.model_dump(),
        phones=phones[client.id],
        emails=emails[client.id],
        position=client.position,
        address=client.address,
        birthday=client.birthday,
        dates=[DateIn.model_validate(d) for d in client.dates or []],
        custom_fields=client.custom_fields or {},
        contacts=[
            ContactPerson(
                id=c.id,
                name=c.name,
                position=c.position,
                phones=phones[c.id],
                emails=emails[c.id],
            )
            for c in people
            if c.company_id == summary.id
        ],
        created_by=user_ref_of(client.created_by_id, client.created_by_name),
        updated_by=user_ref_of(client.updated_by_id, client.updated_by_name),
    )
