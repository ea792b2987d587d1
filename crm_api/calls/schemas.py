from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from crm_api.platform.schemas import ApiModel, Id

# What came of a call, picked after it: one word the UI translates.
CallResult = Literal["sale", "interested", "callback", "info", "not_interested", "wrong_number"]


class CallPublic(ApiModel):
    """A call, the one shape of it: the API's answers and the live frames both carry it.
    Numbers are E.164 (an extension for an internal party); times are the PBX's clock."""

    id: int
    pbx: str  # the PBX that carries the call (its CALLCARD_PBX_NAME)
    call_id: str | None  # the PBX's id of it (unique per PBX), else the CRM's (click-to-call)
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
    # Why nobody answered: no_answer | queue_timeout | abandoned_ringing | abandoned_queue |
    # abandoned_early | busy.
    unanswered: str | None = None
    queue: str | None = None
    caller_name: str | None = None
    ring_s: float | None  # the caller's wait, over every attempt
    talk_s: float | None
    talk_by_agent: dict[str, float] = Field(default_factory=dict)  # extension -> seconds
    failure: str | None
    recording_id: int | None = None
    # playable, or why not: the file is not (yet) on disk, or it holds no sound
    recording: Literal["playable", "empty", "missing"] | None = None
    callback_task_id: int | None = None
    score: dict[str, object] | None
    result: CallResult | None = None  # what came of the call, as its operator or manager says


class CallbackPublic(ApiModel):
    """The open (or done) callback task an unanswered call is on."""

    task_id: int
    assignee_id: int
    count: int  # unanswered calls from the client it covers
    done_at: datetime | None


class MissedCallPublic(ApiModel):
    call: CallPublic
    client_name: str | None
    callback: CallbackPublic | None


class OriginateRequestIn(ApiModel):
    phone_id: Id


class OriginateAccepted(ApiModel):
    call: CallPublic


class CallResultIn(ApiModel):
    result: CallResult | None  # null: not said yet


class AttachIn(ApiModel):
    client_id: Id


class TransferIn(ApiModel):
    extension: str = Field(max_length=32, pattern=r"^[0-9A-Za-z*#]+$")  # where the call goes


class CallScoreIn(ApiModel):
    criteria: dict[str, int] = Field(min_length=1, max_length=20)
    comment: str | None = Field(default=None, max_length=5000)


CallDisposition = Literal["answered", "missed", "busy", "abandoned", "failed"]
