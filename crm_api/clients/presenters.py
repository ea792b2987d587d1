"""ORM rows to response models, in one place."""

from __future__ import annotations

from crm_api.accounts.models import User
from crm_api.clients.models import Client
from crm_api.clients.schemas import (
    ClientPublic,
    ClientSummary,
    ContactPerson,
    EmailPublic,
    PhonePublic,
)
from crm_api.clients.timeline.models import Communication
from crm_api.clients.timeline.schemas import CommentPublic, CommunicationPublic
from crm_api.clients.types import DateIn
from crm_api.platform.schemas import UserRef


def user_ref(user: User | None) -> UserRef | None:
    return UserRef(id=user.id, full_name=user.full_name) if user else None


def client_public(summary: ClientSummary, client: Client, contacts: list[Client]) -> ClientPublic:
    """The whole card: its summary (`summary.summary_of`) and the rest of `client`."""
    return ClientPublic(
        **summary.model_dump(),
        phones=[PhonePublic.model_validate(p) for p in client.phones],
        emails=[EmailPublic.model_validate(e) for e in client.emails],
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
                phones=[PhonePublic.model_validate(p) for p in c.phones],
                emails=[EmailPublic.model_validate(e) for e in c.emails],
            )
            for c in contacts
        ],
        created_by=user_ref(client.created_by),
        updated_by=user_ref(client.updated_by),
    )


def communication_public(comm: Communication) -> CommunicationPublic:
    return CommunicationPublic(
        id=comm.id,
        client_id=comm.client_id,
        kind=comm.kind,
        direction=comm.direction,
        status=comm.status,
        user=user_ref(comm.user),
        occurred_at=comm.occurred_at,
        subject=comm.subject,
        body=comm.body,
        deal_id=comm.deal_id,
        details=comm.details or {},
        comments=[
            CommentPublic(id=c.id, user=user_ref(c.user), body=c.body, created_at=c.created_at)
            for c in comm.comments
        ],
    )
