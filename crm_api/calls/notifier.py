"""The only publisher of call frames: what each carries (`CallPublic`, the one shape of a
call, and what the frame adds) and who gets it. The consumer and the click-to-call use
case say what happened; the frames are made here."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Literal

from crm_api.accounts.models import Role
from crm_api.calls.models import AnyCall
from crm_api.calls.schemas import CallPublic
from crm_api.clients.schemas import CallerCard
from crm_api.platform.realtime.frames import Audience, Frame, FrameModel
from crm_api.platform.realtime.hub import Hub


class CallRinging(CallPublic, CallerCard):
    """The pop: the call, the agent whose phone rings, and the caller's card in brief."""

    agent: str
    agent_user_id: int | None = None  # None: no active user has this extension


class CallAnswered(CallPublic):
    agent: str | None


class CallFailed(CallPublic):
    reason: str


class CallMissed(CallPublic):
    """Nobody answered: `assignee_id` owes the caller a callback (`callback_task_id`)."""

    assignee_id: int


class CallOriginatingFrame(FrameModel):
    """Click-to-call: the manager's phone is about to ring."""

    type: Literal["call.originating"] = "call.originating"
    data: CallPublic


class CallDiallingFrame(FrameModel):
    """The manager picked up: the client's number is being dialled."""

    type: Literal["call.dialling"] = "call.dialling"
    data: CallPublic


class CallRingingFrame(FrameModel):
    type: Literal["call.ringing"] = "call.ringing"
    data: CallRinging


class CallAnsweredFrame(FrameModel):
    type: Literal["call.answered"] = "call.answered"
    data: CallAnswered


class CallFailedFrame(FrameModel):
    type: Literal["call.failed"] = "call.failed"
    data: CallFailed


class CallMissedFrame(FrameModel):
    type: Literal["call.missed"] = "call.missed"
    data: CallMissed


class CallEndedFrame(FrameModel):
    type: Literal["call.ended"] = "call.ended"
    data: CallPublic


# Supervisors see every call's frames; the others the frames addressed to them. A missed
# call is the team's: every operator's missed-calls list shows it as it happens.
WATCHERS = (Role.SUPERVISOR.value,)
TEAM_FRAMES = {CallMissedFrame.name(): (Role.SUPERVISOR.value, Role.OPERATOR.value)}
_ONCE_PER_CALL = frozenset({CallEndedFrame.name(), CallMissedFrame.name()})
Outgoing = tuple[str, dict[str, Any], list[int]]  # a frame's type, its data, its users
Frames = list[Outgoing]


def call_public(call: AnyCall, recording_id: int | None = None) -> CallPublic:
    offered = recording_id if call.talk_s is None or call.talk_s > 0 else None
    assert call.id is not None, "a call is shown once it is written"
    return CallPublic(
        id=call.id,
        pbx=call.pbx,
        call_id=call.pbx_call_id or call.crm_call_id,
        client_id=call.client_id,
        user_id=call.user_id,
        direction=call.direction,
        state=call.state,
        caller=call.caller,
        callee=call.callee,
        did=call.did,
        ringing=list(call.ringing or []),
        agents=list(call.agents or []),
        answered_by=call.answered_by,
        started_at=call.started_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        disposition=call.disposition,
        unanswered=call.unanswered,
        queue=call.queue,
        caller_name=call.caller_name,
        ring_s=call.ring_s,
        talk_s=call.talk_s,
        talk_by_agent=dict(call.talk_by_agent or {}),
        failure=call.failure,
        recording_id=offered,
        callback_task_id=call.callback_task_id,
        score=call.score,
        result=call.result,  # type: ignore[arg-type]  # written through CallResultIn only
    )


def call_data(call: AnyCall, **more: Any) -> dict[str, Any]:
    """A frame's data: the call as the API shows it, and what this frame adds."""
    return {**call_public(call).model_dump(mode="json"), **more}


def _owner(call: AnyCall) -> list[int]:
    return [call.user_id] if call.user_id else []


def originating(call: CallPublic, user_id: int) -> Outgoing:
    return CallOriginatingFrame.name(), call.model_dump(mode="json"), [user_id]


def dialling(call: AnyCall) -> Outgoing:
    return CallDiallingFrame.name(), call_data(call), _owner(call)


def ringing(
    call: dict[str, Any], agent: str, agent_user_id: int | None, card: dict[str, Any]
) -> Outgoing:
    """`call`: `call_data` of the call; `card`: its `CallerCard`, as `call_data` dumps."""
    data = {**call, "agent": agent, **card}
    if agent_user_id is None:
        return CallRingingFrame.name(), data, []
    data["agent_user_id"] = agent_user_id
    return CallRingingFrame.name(), data, [agent_user_id]


def answered(call: AnyCall, agent: str | None, users: list[int]) -> Outgoing:
    return CallAnsweredFrame.name(), call_data(call, agent=agent), users


def failed(call: AnyCall, reason: str) -> Outgoing:
    return CallFailedFrame.name(), call_data(call, reason=reason), _owner(call)


def missed(call: AnyCall, client_id: int, assignee_id: int) -> Outgoing:
    data = call_data(call, client_id=client_id, assignee_id=assignee_id)
    return CallMissedFrame.name(), data, [assignee_id]


def ended(call: AnyCall, client_id: int | None, users: list[int]) -> Outgoing:
    return CallEndedFrame.name(), call_data(call, client_id=client_id), users


def frame(outgoing: Outgoing) -> Frame:
    """The frame to publish, its audience made from its type and users."""
    type_, data, users = outgoing
    audience = Audience(
        user_ids=frozenset(users), roles=frozenset(TEAM_FRAMES.get(type_, WATCHERS))
    )
    # Frames that happen once per call (once per phone, for the pop and the answer) are
    # tagged by the call's row (call ids repeat across PBXs), whichever worker sends them:
    # one that pushed the pop ahead of writing the ring, or wrote the ring, answer or end
    # and died before its frames went out, leaves them to another, whose copies readers
    # drop by the tag.
    if type_ == CallRingingFrame.name():
        tag = f"pop:{data['id']}:{data['agent']}"
    elif type_ == CallAnsweredFrame.name():
        tag = f"{type_}:{data['id']}:{data['agent'] or ''}"
    elif type_ in _ONCE_PER_CALL:
        tag = f"{type_}:{data['id']}"
    else:
        return Frame(type=type_, data=data, audience=audience)
    return Frame(type=type_, data=data, audience=audience, tag=tag)


async def publish(hub: Hub, frames: Frames) -> None:
    for outgoing in frames:
        await hub.publish(frame(outgoing))


def push(hub: Hub, outgoing: Outgoing) -> Coroutine[Any, Any, Frame]:
    """One frame (the early pop), handed to the bus now; its outcome an awaitable the
    caller schedules itself."""
    return hub.publish_now(frame(outgoing))
