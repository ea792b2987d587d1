from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from crm_api.clients.schemas import ClientSummary
from crm_api.clients.timeline.schemas import CommunicationPublic
from crm_api.platform.schemas import ApiModel, Id

# What came of a call, picked after it: one word the UI translates.
CallResult = Literal["sale", "interested", "callback", "info", "not_interested", "wrong_number"]


class CallPublic(ApiModel):
    """A call, the one shape of it: the API's answers and the live frames both carry it.
    Numbers are E.164 (an extension for an internal party); times are the PBX's clock."""

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


class CallScoreIn(ApiModel):
    criteria: dict[str, int] = Field(min_length=1, max_length=20)
    comment: str | None = Field(default=None, max_length=5000)


CallDisposition = Literal["answered", "missed", "busy", "abandoned", "failed"]


class PopClient(ClientSummary):
    """The caller's card in brief. `is_new`: a card the PBX made for an unknown number
    that nobody has filled in yet (the operator gets the new-card form instead)."""

    is_new: bool


class PopDeal(ApiModel):
    id: int
    title: str
    amount: str
    currency: str
    stage_id: int
    stage: str


class PopTask(ApiModel):
    id: int
    title: str
    due_at: datetime | None
    assignee_id: int | None
    deal_id: int | None
    # A task the system made: what it is and its parameters (see TaskPublic), for the UI
    # to word in the user's language.
    kind: str | None = None
    params: dict[str, Any] | None = None


class CallerCard(ApiModel):
    """What the operator sees of the caller the moment the phone rings."""

    client: PopClient | None
    communications: list[CommunicationPublic]
    deals: list[PopDeal]
    tasks: list[PopTask]
