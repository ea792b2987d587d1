"""What the sales use cases take: plain values the routers parse from the wire (the HTTP
models in schemas.py stay on the HTTP side). Changes carry only the fields sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TypedDict

from crm_api.sales.models import StageKind


@dataclass(frozen=True, slots=True)
class NewDeal:
    client_id: int
    title: str
    amount: Decimal = Decimal(0)
    currency: str = "RUB"
    manager_id: int | None = None  # the author if a manager, else the client's manager
    stage_id: int | None = None  # the first open stage when not given
    lead_source_id: int | None = None  # the client's when not given
    expected_close: date | None = None


class DealChanges(TypedDict, total=False):
    title: str | None
    amount: Decimal | None
    currency: str | None
    manager_id: int | None
    lead_source_id: int | None
    expected_close: date | None
    satisfaction: int | None


class StageChanges(TypedDict, total=False):
    name: str | None
    name_ru: str | None
    kind: StageKind | None
    is_active: bool | None
