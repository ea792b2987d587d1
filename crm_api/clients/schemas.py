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
