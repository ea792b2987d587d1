from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import EmailStr, Field

from crm_api.clients.directories.schemas import DirectoryItem
from crm_api.clients.models import ClientKind
from crm_api.clients.timeline.schemas import CommunicationPublic
from crm_api.platform.schemas import ApiModel, UserRef

ClientSort = Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"]


class PhoneIn(ApiModel):
    number: str = Field(min_length=1, max_length=50)
    label: str | None = Field(default=None, max_length=50)


class EmailIn(ApiModel):
    email: EmailStr
    label: str | None = Field(default=None, max_length=50)


class DateIn(ApiModel):
    label: str = Field(min_length=1, max_length=50)
    date: date


class ClientCreate(ApiModel):
    kind: ClientKind = ClientKind.PERSON
    name: str = Field(min_length=1, max_length=300)
    phones: list[PhoneIn] = Field(default=[], max_length=20)
    emails: list[EmailIn] = Field(default=[], max_length=20)
    company_id: int | None = None
    position: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=2000)
    birthday: date | None = None
    dates: list[DateIn] = Field(default=[], max_length=20)
    lead_source_id: int | None = None
    segment_id: int | None = None
    group_ids: list[int] = Field(default=[], max_length=50)
    manager_id: int | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)


class ClientUpdate(ApiModel):
    """Partial: only the fields sent are changed; lists replace the card's lists."""

    kind: ClientKind | None = None
    name: str | None = Field(default=None, min_length=1, max_length=300)
    phones: list[PhoneIn] | None = Field(default=None, max_length=20)
    emails: list[EmailIn] | None = Field(default=None, max_length=20)
    company_id: int | None = None
    position: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=2000)
    birthday: date | None = None
    dates: list[DateIn] | None = Field(default=None, max_length=20)
    lead_source_id: int | None = None
    segment_id: int | None = None
    group_ids: list[int] | None = Field(default=None, max_length=50)
    manager_id: int | None = None
    custom_fields: dict[str, Any] | None = None


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


class ClientFilters(ApiModel):
    """The client list's query; also what a saved view stores."""

    q: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)
    email: str | None = Field(default=None, max_length=254)
    group_id: int | None = None
    segment_id: int | None = None
    source_id: int | None = None
    manager_id: int | None = None
    unassigned: bool | None = None
    kind: ClientKind | None = None
    sort: ClientSort = "-created_at"


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
