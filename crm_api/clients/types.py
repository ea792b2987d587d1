"""What the client use cases take: a new card, the changes to one (only the fields sent),
and the list's filters (also what a saved view stores). Validated models shared by the HTTP
API, the file import and the demo data; the HTTP-only shapes are in schemas.py."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import EmailStr, Field

from crm_api.clients.models import ClientKind
from crm_api.platform.schemas import ApiModel, Id

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
    company_id: Id | None = None
    position: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=2000)
    birthday: date | None = None
    dates: list[DateIn] = Field(default=[], max_length=20)
    lead_source_id: Id | None = None
    segment_id: Id | None = None
    group_ids: list[Id] = Field(default=[], max_length=50)
    manager_id: Id | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)


class ClientUpdate(ApiModel):
    """Partial: only the fields sent are changed; lists replace the card's lists."""

    kind: ClientKind | None = None
    name: str | None = Field(default=None, min_length=1, max_length=300)
    phones: list[PhoneIn] | None = Field(default=None, max_length=20)
    emails: list[EmailIn] | None = Field(default=None, max_length=20)
    company_id: Id | None = None
    position: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=2000)
    birthday: date | None = None
    dates: list[DateIn] | None = Field(default=None, max_length=20)
    lead_source_id: Id | None = None
    segment_id: Id | None = None
    group_ids: list[Id] | None = Field(default=None, max_length=50)
    manager_id: Id | None = None
    custom_fields: dict[str, Any] | None = None


class ClientFilters(ApiModel):
    """The client list's query; also what a saved view stores."""

    q: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)
    email: str | None = Field(default=None, max_length=254)
    group_id: Id | None = None
    segment_id: Id | None = None
    source_id: Id | None = None
    manager_id: Id | None = None
    unassigned: bool | None = None
    kind: ClientKind | None = None
    sort: ClientSort = "-created_at"
