from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from crm_api.clients.directories.schemas import DirectoryItem
from crm_api.clients.models import ClientKind
from crm_api.clients.timeline.schemas import CommunicationPublic
from crm_api.clients.types import ClientFilters, DateIn
from crm_api.platform.schemas import ApiModel, UserRef


class PhonePublic(ApiModel):
    id: int
    e164: str
    raw: str
    label: str | None


class EmailPublic(ApiModel):
    id: int
    email: str
    label: str | None


class ClientSummary(ApiModel):
    id: int
    kind: ClientKind
    name: str
    company_id: int | None
    company_name: str | None
    primary_phone: str | None
    primary_email: str | None
    manager: UserRef | None
    groups: list[DirectoryItem]
    segment: DirectoryItem | None
    lead_source: DirectoryItem | None
    sms_opted_out: bool
    created_at: datetime
    updated_at: datetime


class PopClient(ClientSummary):
    """The caller's card in brief. `is_new`: a card the PBX made for an unknown number
    that nobody has filled in yet (the operator gets the new-card form instead)."""

    is_new: bool


class PopDeal(ApiModel):
    id: int
    title: str
    amount: str
    currency: str
    stage_id: int
    stage: str


class PopTask(ApiModel):
    id: int
    title: str
    due_at: datetime | None
    assignee_id: int | None
    deal_id: int | None
    # A task the system made: what it is and its parameters (see TaskPublic), for the UI
    # to word in the user's language.
    kind: str | None = None
    params: dict[str, Any] | None = None


class CallerCard(ApiModel):
    """What the operator sees of the caller the moment the phone rings."""

    client: PopClient | None
    communications: list[CommunicationPublic]
    deals: list[PopDeal]
    tasks: list[PopTask]


class ContactPerson(ApiModel):
    id: int
    name: str
    position: str | None
    phones: list[PhonePublic]
    emails: list[EmailPublic]


class ClientPublic(ClientSummary):
    phones: list[PhonePublic]
    emails: list[EmailPublic]
    position: str | None
    address: str | None
    birthday: date | None
    dates: list[DateIn]
    custom_fields: dict[str, Any]
    contacts: list[ContactPerson]
    created_by: UserRef | None
    updated_by: UserRef | None


class SavedViewCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    filters: ClientFilters


class SavedViewPublic(ApiModel):
    id: int
    name: str
    filters: ClientFilters


class ImportError_(ApiModel):
    row: int
    field: str | None
    message: str


class ImportJobPublic(ApiModel):
    id: int
    filename: str
    status: Literal["running", "done", "failed"]
    total: int
    processed: int
    created: int
    errors: list[ImportError_]
    message: str | None
    created_at: datetime
    finished_at: datetime | None


class AuditEntryPublic(ApiModel):
    id: int
    at: datetime
    user: UserRef | None
    action: str
    entity: str
    entity_id: int
    changes: dict[str, Any]


class ClientCard(ApiModel):
    client: ClientPublic
    communications: list[CommunicationPublic]
    communications_total: int
