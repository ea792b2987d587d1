from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

T = TypeVar("T")
Title = Annotated[str, Field(min_length=1, max_length=300)]


class ApiModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(ApiModel, Generic[T]):
    items: list[T]
    total: int
    page: int = 1
    page_size: int = 0


class ItemList(ApiModel, Generic[T]):
    items: list[T]


class UserRef(ApiModel):
    id: int
    full_name: str


def user_ref_of(user_id: int | None, full_name: str | None) -> UserRef | None:
    """The user of a row read with its user's name by an outer join (None: no user)."""
    return (
        None if user_id is None or full_name is None else UserRef(id=user_id, full_name=full_name)
    )


# The deployment's links to the outside (see link_status.py).
LinkName = Literal["pbx", "smsc", "email"]


class LinkPublic(BaseModel):
    configured: bool
    up: bool | None  # None: nothing holds a connection to it (SMTP connects per message)
    since: datetime | None  # when it went up or down


class LinksPublic(BaseModel):
    pbx: LinkPublic
    smsc: LinkPublic
    email: LinkPublic


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, object] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: ErrorBody


# A row id as the database stores it (32-bit on PostgreSQL): a larger number is a 422, not a 500.
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]


def _iso_date_only(value: Any) -> Any:
    # Pydantic reads a number as seconds since 1970: `expected_close: 0` would be 1 Jan 1970.
    if isinstance(value, int | float):
        raise ValueError("a date as YYYY-MM-DD")
    return value


# A calendar day in a request: written as YYYY-MM-DD, within years the date arithmetic of
# schedules and reports can reach (year 1 or 9999 overflowed it).
Day = Annotated[
    date,
    BeforeValidator(_iso_date_only),
    Field(ge=date(1970, 1, 1), le=date(2999, 12, 31)),
]

# A time of day on the company's clock (no offset, so not JSON Schema's `time` format).
WallTime = Annotated[
    time,
    PlainSerializer(lambda t: t.isoformat(timespec="minutes"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}),
]
