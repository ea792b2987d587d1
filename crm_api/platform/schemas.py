from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, object] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: ErrorBody
