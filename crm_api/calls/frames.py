"""The one place call frames go out from, and the one shape they carry (`CallPublic`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crm_api.accounts.models import Role
from crm_api.calls.models import Call
from crm_api.calls.schemas import CallPublic
from crm_api.platform.realtime.hub import Hub

# Supervisors see every call's frames; the others the frames addressed to them. A missed
# call is the team's: every operator's missed-calls list shows it as it happens.
WATCHERS = (Role.SUPERVISOR.value,)
TEAM_FRAMES = {"call.missed": (Role.SUPERVISOR.value, Role.OPERATOR.value)}
Frames = list[tuple[str, dict[str, Any], list[int]]]


def call_public(call: Call, recording_id: int | None = None) -> CallPublic:
    offered = recording_id if call.talk_s is None or call.talk_s > 0 else None
    return CallPublic(
        id=call.id,
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


def call_data(call: Call, **more: Any) -> dict[str, Any]:
    """A frame's data: the call as the API shows it, and what this frame adds."""
    return {**call_public(call).model_dump(mode="json"), **more}


async def publish(hub: Hub, frames: Frames) -> None:
    for type_, data, users in frames:
        await hub.notify(type_, data, users=users, roles=TEAM_FRAMES.get(type_, WATCHERS))


def push(hub: Hub, type_: str, data: dict[str, Any], users: Sequence[int]) -> Any:
    """One frame, as an awaitable the caller schedules itself (the early pop)."""
    return hub.notify(type_, data, users=list(users), roles=WATCHERS)
