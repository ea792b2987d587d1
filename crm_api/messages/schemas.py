from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from crm_api.clients.types import ClientFilters
from crm_api.messages.templates import SMS_MAX_CHARS
from crm_api.platform.schemas import ApiModel, Id


class SmsSendIn(ApiModel):
    """`text` may use {name}, {first_name}, {manager}, {deal_title}, {deal_amount}."""

    text: str = Field(min_length=1, max_length=SMS_MAX_CHARS)
    phone: str | None = Field(default=None, max_length=50)  # one of the client's; default first
    deal_id: Id | None = None  # whose fields fill {deal_…}; default the latest open deal


class EmailSendIn(ApiModel):
    subject: str = Field(min_length=1, max_length=300)
    text: str = Field(min_length=1, max_length=100_000)
    to: str | None = Field(default=None, max_length=254)  # one of the client's; default first
    deal_id: Id | None = None


class MessagePublic(ApiModel):
    id: int
    channel: str
    client_id: int
    communication_id: int | None
    bulk_id: int | None
    to: str
    subject: str | None
    body: str
    status: str
    attempts: int
    last_error: str | None
    parts: list[dict[str, Any]]
    created_at: datetime
    submitted_at: datetime | None
    final_at: datetime | None


class BulkSmsIn(ApiModel):
    text: str = Field(min_length=1, max_length=SMS_MAX_CHARS)
    view_id: Id | None = None
    filters: ClientFilters | None = None
    rate: float | None = Field(default=None, gt=0, le=1000)  # messages per second

    @model_validator(mode="after")
    def one_target(self) -> BulkSmsIn:
        if (self.view_id is None) == (self.filters is None):
            raise ValueError("give exactly one of view_id and filters")
        return self


class BulkSmsPublic(ApiModel):
    id: int
    status: str
    text: str
    rate: float
    total: int
    pending: int
    sent: int
    delivered: int
    failed: int
    skipped: list[dict[str, Any]]
    created_at: datetime
    finished_at: datetime | None
