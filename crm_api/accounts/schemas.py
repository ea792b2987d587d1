from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from crm_api.accounts.models import Role
from crm_api.platform.schemas import ApiModel

Language = Literal["ru", "en"]

# Where the SIP bridge dials the user instead of their extension: `sip:` or `sips:`, an
# optional user part, a host (name, IPv4 or [IPv6]) and port, URI parameters.
SIP_URI = (
    r'^sips?:(?:[^@\s<>"]+@)?(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])'
    r'(?::[0-9]{1,5})?(?:;[^\s<>"]*)?$'
)


class UserPublic(ApiModel):
    id: int
    username: str
    full_name: str
    role: Role
    extension: str | None
    sip_address: str | None
    language: str
    is_active: bool


class UserCreate(ApiModel):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: str = Field(min_length=8, max_length=200)
    full_name: str = Field(min_length=1, max_length=200)
    role: Role
    extension: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Za-z*#]+$")
    sip_address: str | None = Field(default=None, max_length=200, pattern=SIP_URI)
    language: Language = "ru"


class UserUpdate(ApiModel):
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    password: str | None = Field(default=None, min_length=8, max_length=200)
    role: Role | None = None
    extension: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Za-z*#]+$")
    sip_address: str | None = Field(default=None, max_length=200, pattern=SIP_URI)
    language: Language | None = None
    is_active: bool | None = None


class ProfileUpdate(ApiModel):
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    language: Language | None = None


class LoginRequest(ApiModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class LoginResponse(ApiModel):
    user: UserPublic
    token: str


class TokenCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    days: int = Field(default=90, ge=1, le=365)  # capped by CALLCARD_API_TOKEN_DAYS


class TokenPublic(ApiModel):
    id: int
    kind: str  # session | api
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    current: bool = False  # the one this request came with


class PasswordChange(ApiModel):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=8, max_length=200)


class TokenIssued(ApiModel):
    token: str
    expires_at: datetime | None
