from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from crm_api.platform.schemas import ApiModel, Id


class CallPublic(ApiModel):
    id: int
    call_id: str | None
    client_id: int | None
    user_id: int | None
    direction: str
    state: str
    caller: str | None
    callee: str | None
    did: str | None
    ringing: list[str]
    agents: list[str]
    answered_by: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    disposition: str | None
    ring_s: float | None
    talk_s: float | None
    failure: str | None
    recording_id: int | None = None
    # playable, or why not: the file is not (yet) on disk, or it holds no sound
    recording: Literal["playable", "empty", "missing"] | None = None
    score: dict[str, object] | None


class OriginateRequestIn(ApiModel):
    phone_id: Id


class OriginateAccepted(ApiModel):
    call: CallPublic


class CallScoreIn(ApiModel):
    criteria: dict[str, int] = Field(min_length=1, max_length=20)
    comment: str | None = Field(default=None, max_length=5000)


CallDisposition = Literal["answered", "missed", "busy", "abandoned", "failed"]
