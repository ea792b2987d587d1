from __future__ import annotations

from typing import Literal

from pydantic import Field

from crm_api.platform.schemas import ApiModel

DirectoryKind = Literal["lead-sources", "segments", "groups"]


class DirectoryItem(ApiModel):
    id: int
    name: str
    color: str | None = None


class DirectoryItemCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")


class DirectoryItemUpdate(ApiModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")


class CustomFieldDefPublic(ApiModel):
    id: int
    key: str
    label: str
    type: Literal["text", "number", "date", "select"]
    options: list[str]


class CustomFieldDefCreate(ApiModel):
    key: str = Field(min_length=1, max_length=50, pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1, max_length=100)
    type: Literal["text", "number", "date", "select"] = "text"
    options: list[str] = Field(default_factory=list)
