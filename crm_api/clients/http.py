from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.exc import IntegrityError

from crm_api.accounts import audit
from crm_api.accounts.models import Role, User
from crm_api.accounts.permissions import Permission
from crm_api.clients import card as cards
from crm_api.clients import notifier, phones
from crm_api.clients import service as clients_domain
from crm_api.clients import summary as summaries
from crm_api.clients.models import Client
from crm_api.clients.presenters import communication_public, user_ref
from crm_api.clients.schemas import (
    AuditEntryPublic,
    CallerCard,
    ClientCard,
    ClientPublic,
    ClientSummary,
)
from crm_api.clients.timeline import notifier as timeline_notifier
from crm_api.clients.timeline import service as communications
from crm_api.clients.timeline.models import CommKind
from crm_api.clients.timeline.schemas import CommunicationPublic, NoteCreate
from crm_api.clients.types import ClientCreate, ClientFilters, ClientUpdate
from crm_api.platform.deps import (
    ReadAccess,
    ReadSessionDep,
    Services,
    ServicesDep,
    SessionDep,
    require,
    require_reading,
)
from crm_api.platform.errors import DuplicateContact, InvalidInput, NotFound
from crm_api.platform.schemas import Id, ItemList, Page

router = APIRouter(prefix="/clients", tags=["clients"])
Reader = Annotated[User, require(Permission.CLIENTS_READ)]
Reading = Annotated[ReadAccess, require_reading(Permission.CLIENTS_READ)]
Writer = Annotated[User, require(Permission.CLIENTS_WRITE)]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
PageSize = Annotated[int, Query(ge=1, le=200)]
CARD_COMMUNICATIONS = 20


async def publish_client(services: Services, session: SessionDep, client: Client) -> ClientPublic:
    """The card as it now is, also pushed to every socket watching it."""
    public = await cards.card_of(session, client.id)
    await notifier.client_updated(services.hub, public)
    return public


@router.get("", operation_id="list_clients")
async def list_clients(
    session: ReadSessionDep,
    services: ServicesDep,
    user: Reader,
    filters: Annotated[ClientFilters, Depends()],
    page: PageNo = 1,
    page_size: PageSize = 25,
) -> Page[ClientSummary]:
    ids, total = await clients_domain.search(
        session, user, filters, services.settings.default_region, page=page, page_size=page_size
    )
    items = await summaries.summaries_of(session, ids)
    return Page(items=items, total=total, page=page, page_size=page_size)


@router.post("", status_code=201, operation_id="create_client")
async def create_client(
    body: ClientCreate, session: SessionDep, services: ServicesDep, user: Writer
) -> ClientPublic:
    client = await clients_domain.create_client(
        session, user, body, services.settings.default_region
    )
    try:
        await session.commit()
    except IntegrityError as exc:  # a concurrent card took the number first
        raise DuplicateContact("phone or e-mail already belongs to another client") from exc
    return await publish_client(services, session, client)


@router.get("/lookup", operation_id="lookup_client_by_phone")
async def lookup(
    reading: Reading, phone: Annotated[str, Query(min_length=1, max_length=50)]
) -> ClientSummary:
    """The card of exactly this subscriber, whatever form the number is typed in."""
    try:
        e164 = phones.normalize(phone, reading.services.settings.default_region)
    except phones.InvalidPhone as exc:
        raise InvalidInput("phone", f"invalid phone number {phone!r}") from exc
    async with reading.db() as db:
        summary = await summaries.summary_by_phone(db, reading.user, e164)
    if summary is None:
        raise NotFound(f"no client with phone {e164}", details={"phone": e164})
    return summary


@router.get("/{client_id}", operation_id="get_client")
async def get_client(client_id: Id, reading: Reading) -> ClientPublic:
    async with reading.db() as db:
        return await cards.card_for(db, reading.user, client_id)


@router.get("/{client_id}/card", operation_id="get_client_card")
async def get_card(client_id: Id, reading: Reading) -> ClientCard:
    """The card page in one request: the client and the newest communications."""
    async with reading.db() as db:
        client = await cards.card_for(db, reading.user, client_id)
        items, total = await communications.timeline(
            db, client_id, kind=None, page=1, page_size=CARD_COMMUNICATIONS
        )
    return ClientCard(client=client, communications=items, communications_total=total)


@router.get("/{client_id}/caller-card", operation_id="get_caller_card")
async def get_caller_card(client_id: Id, session: ReadSessionDep, user: Reader) -> CallerCard:
    """The screen-pop's card of this client, as a ringing call's frame carries it: for a
    call whose pop this tab did not see ring."""
    client = await clients_domain.get_for(session, user, client_id)
    return await summaries.caller_card(session, client)


@router.patch("/{client_id}", operation_id="update_client")
async def update_client(
    client_id: Id, body: ClientUpdate, session: SessionDep, services: ServicesDep, user: Writer
) -> ClientPublic:
    client = await clients_domain.get_for(session, user, client_id)
    if user.role is Role.OPERATOR and "manager_id" in body.model_fields_set:
        raise InvalidInput("manager_id", "operators do not assign managers")
    await clients_domain.update_client(
        session, user, client, body, services.settings.default_region
    )
    try:
        await session.commit()
    except IntegrityError as exc:
        raise DuplicateContact("phone or e-mail already belongs to another client") from exc
    return await publish_client(services, session, client)


@router.get("/{client_id}/communications", operation_id="list_client_communications")
async def list_communications(
    client_id: Id,
    session: SessionDep,
    user: Reader,
    kind: CommKind | None = None,
    page: PageNo = 1,
    page_size: PageSize = 20,
) -> Page[CommunicationPublic]:
    await clients_domain.get_for(session, user, client_id)
    items, total = await communications.timeline(
        session, client_id, kind=kind, page=page, page_size=page_size
    )
    return Page(items=items, total=total, page=page, page_size=page_size)


@router.post("/{client_id}/notes", status_code=201, operation_id="add_client_note")
async def add_note(
    client_id: Id,
    body: NoteCreate,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.NOTES_WRITE)],
) -> CommunicationPublic:
    client = await clients_domain.get_for(session, user, client_id)
    note = await communications.add_note(session, user, client, body.body, body.deal_id)
    await session.commit()
    await session.refresh(note, ["user", "comments"])
    public = communication_public(note)
    await timeline_notifier.communication_created(services.hub, public, client_id)
    return public


@router.get("/{client_id}/audit", operation_id="get_client_audit")
async def client_audit(
    client_id: Id,
    session: SessionDep,
    user: Annotated[User, require(Permission.AUDIT_READ)],
) -> ItemList[AuditEntryPublic]:
    await clients_domain.get_for(session, user, client_id)
    entries = await audit.client_history(session, client_id)
    return ItemList(
        items=[
            AuditEntryPublic(
                id=e.id,
                at=e.at,
                user=user_ref(e.user),
                action=e.action,
                entity=e.entity,
                entity_id=e.entity_id,
                changes=e.changes,
            )
            for e in entries
        ]
    )
