"""Client cards: create, change, find (by any form of a number), and the phone index."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, bindparam, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.interfaces import ORMOption
from sqlalchemy.sql.selectable import ScalarSelect

from crm_api.accounts import audit
from crm_api.accounts.models import Role, User
from crm_api.accounts.permissions import can_access_client, client_scope, may_see_client_of
from crm_api.clients import phones
from crm_api.clients.directories.models import ClientGroup, CustomFieldDef, LeadSource, Segment
from crm_api.clients.models import Client, ClientEmail, ClientKind, ClientPhone, client_group_links
from crm_api.clients.types import ClientCreate, ClientFilters, ClientUpdate, EmailIn, PhoneIn
from crm_api.platform.db.base import utcnow
from crm_api.platform.errors import DuplicateContact, Forbidden, InvalidInput, NotFound

_TO_ONE_LOAD = (
    joinedload(Client.lead_source),
    joinedload(Client.segment),
    joinedload(Client.manager),
    joinedload(Client.company),
    joinedload(Client.created_by),
    joinedload(Client.updated_by),
)
# Many cards: to-one relations ride along in the cards' own query; collections come in
# one query each for every card loaded together.
CARD_LOAD = (
    *_TO_ONE_LOAD,
    selectinload(Client.phones),
    selectinload(Client.emails),
    selectinload(Client.groups),
)
# One card: its collections hold a few rows each, so they ride along too; a round trip
# costs more than the repeated columns of their product.
ONE_CARD_LOAD = (
    *_TO_ONE_LOAD,
    joinedload(Client.phones),
    joinedload(Client.emails),
    joinedload(Client.groups),
)


@dataclass(frozen=True, slots=True)
class NormalizedPhone:
    e164: str
    raw: str
    label: str | None


def normalize_phones(items: Sequence[PhoneIn], region: str) -> list[NormalizedPhone]:
    result: list[NormalizedPhone] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        try:
            e164 = phones.normalize(item.number, region)
        except phones.InvalidPhone as exc:
            raise InvalidInput(
                f"phones.{i}.number", f"invalid phone number {item.number!r}"
            ) from exc
        if e164 in seen:
            raise InvalidInput(f"phones.{i}.number", f"the same number as phones.{seen[e164]}")
        seen[e164] = i
        result.append(NormalizedPhone(e164=e164, raw=item.number.strip(), label=item.label))
    return result


def _normalize_emails(items: Sequence[EmailIn]) -> list[tuple[str, str | None]]:
    result: list[tuple[str, str | None]] = []
    for i, item in enumerate(items):
        email = str(item.email).strip().lower()
        if any(email == e for e, _ in result):
            raise InvalidInput(f"emails.{i}.email", "the same e-mail twice")
        result.append((email, item.label))
    return result


async def _ensure_unique_contacts(
    session: AsyncSession,
    actor: User | None,
    numbers: list[NormalizedPhone],
    emails: list[tuple[str, str | None]],
    own_id: int | None,
) -> None:
    """A phone or e-mail already on another card is a 409; which card it is, only for
    those who may see that card (a manager could otherwise probe every number)."""
    checks = (
        ("phone", ClientPhone.e164, ClientPhone.client_id, [n.e164 for n in numbers]),
        ("email", ClientEmail.email, ClientEmail.client_id, [e for e, _ in emails]),
    )
    for field, column, owner, values in checks:
        if not values:
            continue
        row = (
            await session.execute(
                select(column.label("value"), Client.id, Client.name, Client.manager_id)
                .join(Client, Client.id == owner)
                .where(column.in_(values))
                .where(Client.id != (own_id or 0))
                .limit(1)
            )
        ).first()
        if row is None:
            continue
        label = "phone" if field == "phone" else "e-mail"
        details: dict[str, Any] = {"field": field, "value": row.value}
        if actor is None or may_see_client_of(actor, row.manager_id):
            details.update(client_id=row.id, client_name=row.name)
            message = f"{label} {row.value} already belongs to client #{row.id} {row.name}"
        else:
            message = f"{label} {row.value} already belongs to another manager's client"
        raise DuplicateContact(message, details=details)


async def _must_exist(
    session: AsyncSession, model: type[Any], ident: int | None, field: str
) -> Any:
    if ident is None:
        return None
    found = await session.get(model, ident)
    if found is None:
        raise InvalidInput(field, f"no such item: {ident}")
    return found


async def _check_links(
    session: AsyncSession, actor: User | None, data: ClientCreate | ClientUpdate
) -> None:
    sent = data.model_fields_set
    if "lead_source_id" in sent:
        await _must_exist(session, LeadSource, data.lead_source_id, "lead_source_id")
    if "segment_id" in sent:
        await _must_exist(session, Segment, data.segment_id, "segment_id")
    if "manager_id" in sent and data.manager_id is not None:
        manager = await _must_exist(session, User, data.manager_id, "manager_id")
        if not manager.is_active or manager.role is Role.OPERATOR:
            raise InvalidInput("manager_id", "not an active manager")
    if "company_id" in sent and data.company_id is not None:
        company = await _must_exist(session, Client, data.company_id, "company_id")
        if actor is not None and not can_access_client(actor, company):
            # As if it did not exist: the card would show the company's name.
            raise InvalidInput("company_id", f"no such item: {data.company_id}")
        if company.kind is not ClientKind.COMPANY:
            raise InvalidInput("company_id", "not a company")


async def _groups(session: AsyncSession, ids: list[int]) -> list[ClientGroup]:
    found = list((await session.scalars(select(ClientGroup).where(ClientGroup.id.in_(ids)))).all())
    missing = set(ids) - {g.id for g in found}
    if missing:
        raise InvalidInput("group_ids", f"no such groups: {sorted(missing)}")
    return found


async def _validated_custom_fields(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    if not values:
        return {}
    defs = {d.key: d for d in (await session.scalars(select(CustomFieldDef))).all()}
    clean: dict[str, Any] = {}
    for key, value in values.items():
        field = f"custom_fields.{key}"
        definition = defs.get(key)
        if definition is None:
            raise InvalidInput(field, "no such custom field")
        if value is None or value == "":
            continue
        if definition.type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(field, "must be a number")
        elif definition.type == "date":
            try:
                date.fromisoformat(str(value))
            except ValueError as exc:
                raise InvalidInput(field, "must be a date YYYY-MM-DD") from exc
        elif definition.type == "select":
            if value not in definition.options:
                raise InvalidInput(field, f"must be one of {definition.options}")
        elif not isinstance(value, str):
            raise InvalidInput(field, "must be text")
        clean[key] = value
    return clean


def snapshot(client: Client) -> dict[str, Any]:
    """What the audit log compares: the card's own fields in plain values."""
    return {
        "kind": str(client.kind),
        "name": client.name,
        "company_id": client.company_id,
        "position": client.position,
        "address": client.address,
        "birthday": client.birthday.isoformat() if client.birthday else None,
        "dates": list(client.dates or []),
        "lead_source_id": client.lead_source_id,
        "segment_id": client.segment_id,
        "manager_id": client.manager_id,
        "custom_fields": dict(client.custom_fields or {}),
        "phones": [p.e164 for p in client.phones],
        "emails": [e.email for e in client.emails],
        "group_ids": sorted(g.id for g in client.groups),
        "sms_opted_out": client.sms_opted_out,
    }


def _set_phones(client: Client, numbers: list[NormalizedPhone]) -> None:
    existing = {p.e164: p for p in client.phones}
    kept: list[ClientPhone] = []
    for pos, n in enumerate(numbers):
        phone = existing.get(n.e164) or ClientPhone(e164=n.e164, digits=n.e164.lstrip("+"))
        phone.raw, phone.label, phone.position = n.raw, n.label, pos
        kept.append(phone)
    client.phones = kept


def _set_emails(client: Client, emails: list[tuple[str, str | None]]) -> None:
    existing = {e.email: e for e in client.emails}
    kept: list[ClientEmail] = []
    for pos, (email, label) in enumerate(emails):
        item = existing.get(email) or ClientEmail(email=email)
        item.label, item.position = label, pos
        kept.append(item)
    client.emails = kept


async def create_client(
    session: AsyncSession, actor: User | None, data: ClientCreate, region: str
) -> Client:
    numbers = normalize_phones(data.phones, region)
    emails = _normalize_emails(data.emails)
    await _check_links(session, actor, data)
    await _ensure_unique_contacts(session, actor, numbers, emails, None)
    manager_id = data.manager_id
    if manager_id is None and "manager_id" not in data.model_fields_set and actor is not None:
        manager_id = actor.id if actor.role is Role.MANAGER else None
    now = utcnow()
    client = Client(
        kind=data.kind,
        name=data.name.strip(),
        search_name=data.name.strip().casefold(),
        company_id=data.company_id,
        position=data.position,
        address=data.address,
        birthday=data.birthday,
        dates=[d.model_dump(mode="json") for d in data.dates],
        custom_fields=await _validated_custom_fields(session, data.custom_fields),
        lead_source_id=data.lead_source_id,
        segment_id=data.segment_id,
        manager_id=manager_id,
        created_by_id=actor.id if actor else None,
        updated_by_id=actor.id if actor else None,
        created_at=now,
        updated_at=now,
        phones=[],
        emails=[],
        groups=await _groups(session, data.group_ids) if data.group_ids else [],
    )
    _set_phones(client, numbers)
    _set_emails(client, emails)
    session.add(client)
    await session.flush()
    audit.record(
        session,
        actor,
        action="create",
        entity="client",
        entity_id=client.id,
        client_id=client.id,
        changes=audit.diff({}, snapshot(client)),
    )
    return client


async def update_client(
    session: AsyncSession, actor: User, client: Client, data: ClientUpdate, region: str
) -> Client:
    before = snapshot(client)
    sent = data.model_fields_set
    numbers = normalize_phones(data.phones, region) if data.phones is not None else None
    emails = _normalize_emails(data.emails) if data.emails is not None else None
    await _check_links(session, actor, data)
    await _ensure_unique_contacts(session, actor, numbers or [], emails or [], client.id)
    if data.name is not None:
        client.name = data.name.strip()
        client.search_name = client.name.casefold()
    if data.kind is not None:
        client.kind = data.kind
    for field in (
        "company_id",
        "position",
        "address",
        "birthday",
        "lead_source_id",
        "segment_id",
        "manager_id",
    ):
        if field in sent:
            setattr(client, field, getattr(data, field))
    if data.dates is not None:
        client.dates = [d.model_dump(mode="json") for d in data.dates]
    if data.custom_fields is not None:
        client.custom_fields = await _validated_custom_fields(session, data.custom_fields)
    if data.group_ids is not None:
        client.groups = await _groups(session, data.group_ids)
    if numbers is not None:
        _set_phones(client, numbers)
    if emails is not None:
        _set_emails(client, emails)
    changes = audit.diff(before, snapshot(client))
    if changes:
        client.updated_at = utcnow()
        client.updated_by_id = actor.id
        await session.flush()
        audit.record(
            session,
            actor,
            action="update",
            entity="client",
            entity_id=client.id,
            client_id=client.id,
            changes=changes,
        )
    return client


@functools.lru_cache(maxsize=8)
def _card_statement(load: Sequence[ORMOption]) -> Select[Client]:
    # One per load, built once: building it and its cache key cost more CPU than its rows.
    return (
        select(Client)
        .where(Client.id == bindparam("client_id"))
        .options(*load)
        .execution_options(populate_existing=True)
    )


async def load_card(
    session: AsyncSession, client_id: int, load: Sequence[ORMOption] = ONE_CARD_LOAD
) -> Client | None:
    result = await session.execute(_card_statement(tuple(load)), {"client_id": client_id})
    return result.unique().scalar_one_or_none()


def ensure_access(actor: User, client: Client) -> None:
    if not can_access_client(actor, client):
        raise Forbidden(
            f"client #{client.id} belongs to another manager", details={"client_id": client.id}
        )


async def get_for(session: AsyncSession, actor: User, client_id: int) -> Client:
    client = await load_card(session, client_id)
    if client is None:
        raise NotFound(f"client #{client_id} not found", details={"client_id": client_id})
    ensure_access(actor, client)
    return client


def _phone_match(fragment: str, region: str) -> Any:
    normalized = phones.try_normalize(fragment, region)
    if normalized is not None:  # a whole number: the unique index answers at once
        return whose_number(normalized)
    search = phones.phone_search(fragment, region)
    match = ClientPhone.digits.contains(search.anywhere, autoescape=True)
    if search.prefix is not None:
        match = or_(match, ClientPhone.digits.startswith(search.prefix, autoescape=True))
    return exists().where(ClientPhone.client_id == Client.id, match)


def filtered(actor: User, filters: ClientFilters, region: str) -> Select[Client]:
    query = select(Client).where(client_scope(actor))
    if filters.q:
        q = filters.q.strip()
        if phones.looks_like_phone(q):
            query = query.where(_phone_match(q, region))
        else:
            email_match = exists().where(
                ClientEmail.client_id == Client.id,
                ClientEmail.email.contains(q.lower(), autoescape=True),
            )
            if "@" in q:
                query = query.where(email_match)
            else:
                query = query.where(
                    or_(Client.search_name.contains(q.casefold(), autoescape=True), email_match)
                )
    if filters.phone:
        query = query.where(_phone_match(filters.phone, region))
    if filters.email:
        query = query.where(
            exists().where(
                ClientEmail.client_id == Client.id,
                ClientEmail.email.contains(filters.email.strip().lower(), autoescape=True),
            )
        )
    if filters.group_id is not None:
        query = query.where(
            exists().where(
                client_group_links.c.client_id == Client.id,
                client_group_links.c.group_id == filters.group_id,
            )
        )
    if filters.segment_id is not None:
        query = query.where(Client.segment_id == filters.segment_id)
    if filters.source_id is not None:
        query = query.where(Client.lead_source_id == filters.source_id)
    if filters.manager_id is not None:
        query = query.where(Client.manager_id == filters.manager_id)
    if filters.unassigned:
        query = query.where(Client.manager_id.is_(None))
    if filters.kind is not None:
        query = query.where(Client.kind == filters.kind)
    return query


def _ordered(query: Select[Client], sort: str) -> Select[Client]:
    column = {
        "name": Client.search_name,
        "created_at": Client.created_at,
        "updated_at": Client.updated_at,
    }[sort.lstrip("-")]
    if sort.startswith("-"):
        return query.order_by(column.desc(), Client.id.desc())
    return query.order_by(column.asc(), Client.id.asc())


async def search(
    session: AsyncSession,
    actor: User,
    filters: ClientFilters,
    region: str,
    *,
    page: int,
    page_size: int,
) -> tuple[list[int], int]:
    """The ids of one page of the cards `actor` may see that match, and how many match."""
    query = filtered(actor, filters, region)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ids = await session.scalars(
        _ordered(query, filters.sort)
        .with_only_columns(Client.id)
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return list(ids.all()), total


def number_owner(e164: str | BindParameter[str]) -> ScalarSelect[int]:
    """Who is calling (or writing): the one query from a subscriber's E.164 number to their
    card's id (one lookup on the unique E.164 index). The pop, the calls journal, routing,
    the lookup, the search and inbound SMS all ask it."""
    return select(ClientPhone.client_id).where(ClientPhone.e164 == e164).scalar_subquery()


def whose_number(e164: str | BindParameter[str]) -> ColumnElement[bool]:
    """`number_owner` as a condition on `Client`."""
    return Client.id == number_owner(e164)


async def find_by_phone(
    session: AsyncSession, e164: str, load: Sequence[ORMOption] = ONE_CARD_LOAD
) -> Client | None:
    """The card of a subscriber."""
    result = await session.execute(_by_phone_statement(tuple(load)), {"e164": e164})
    return result.unique().scalar_one_or_none()


@functools.lru_cache(maxsize=8)
def _by_phone_statement(load: Sequence[ORMOption]) -> Select[Client]:
    # One per load, built once: every call and inbound SMS asks it.
    return select(Client).where(whose_number(bindparam("e164"))).options(*load)


async def lead_source_by_code(session: AsyncSession, code: str) -> LeadSource | None:
    return await session.scalar(select(LeadSource).where(LeadSource.code == code))


async def find_or_create_by_phone(
    session: AsyncSession,
    e164: str,
    *,
    source_code: str,
    name: str | None = None,
    load: Sequence[ORMOption] = ONE_CARD_LOAD,
) -> tuple[Client, bool]:
    """The card for a number that called or wrote; a fresh card for an unknown one."""
    found = await find_by_phone(session, e164, load)
    if found is not None:
        return found, False
    source = await lead_source_by_code(session, source_code)
    data = ClientCreate(
        name=name or phones.display(e164),
        phones=[PhoneIn(number=e164)],
        lead_source_id=source.id if source else None,
    )
    async with session.begin_nested():
        client = await create_client(session, None, data, "ZZ")
    if not load:  # its own columns, as just written: nothing to read back
        return client, True
    loaded = await load_card(session, client.id, load)
    assert loaded is not None
    return loaded, True
