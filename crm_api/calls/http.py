from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from sqlalchemy import Select, select
from starlette.responses import MalformedRangeHeader

from crm_api.accounts.models import Role, User
from crm_api.accounts.permissions import Permission, allowed
from crm_api.calls.access import may_hear
from crm_api.calls.models import Call, Recording, has_sound, recording_state
from crm_api.calls.schemas import (
    CallDisposition,
    CallPublic,
    CallScoreIn,
    OriginateAccepted,
    OriginateRequestIn,
)
from crm_api.clients import service as clients_domain
from crm_api.clients.models import ClientPhone
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import ServicesDep, SessionDep, require
from crm_api.platform.errors import Forbidden, InvalidInput, NotFound, Unavailable
from crm_api.platform.schemas import Id, ItemList, Page
from telephony.pbx import OriginateRequest, PbxError

router = APIRouter(tags=["calls"])
LIVE = ("originating", "ringing", "answered")


async def _public(session: SessionDep, call: Call, recordings: Path | None = None) -> CallPublic:
    """`recordings`: the folder to look for the file in, when the answer names its state."""
    first = (
        await session.execute(
            select(Recording.id, Recording.file_name)
            .where(Recording.call_id == call.id)
            .order_by(Recording.id)
            .limit(1)
        )
    ).first()
    offered = first if first is not None and (call.talk_s is None or call.talk_s > 0) else None
    state = recording_state(recordings, offered[1]) if offered and recordings else None
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
        ringing=list(call.ringing),
        agents=list(call.agents),
        answered_by=call.answered_by,
        started_at=call.started_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        disposition=call.disposition,
        ring_s=call.ring_s,
        talk_s=call.talk_s,
        failure=call.failure,
        recording_id=offered[0] if offered else None,
        recording=state,
        score=call.score,
    )


def _on_call(user: User, call: Call) -> bool:
    if allowed(user.role, Permission.CALLS_REVIEW):
        return True
    ext = user.extension
    return call.user_id == user.id or (
        ext is not None and (ext in call.agents or ext in call.ringing)
    )


@router.get("/calls/active", operation_id="list_active_calls")
async def active_calls(
    session: SessionDep, user: Annotated[User, require(Permission.CALLS_READ)]
) -> ItemList[CallPublic]:
    """Calls in progress that concern this user (all of them for supervisors), so a page
    opened or refreshed during a call shows it."""
    rows = (await session.scalars(select(Call).where(Call.state.in_(LIVE)).order_by(Call.id))).all()
    return ItemList(items=[await _public(session, c) for c in rows if _on_call(user, c)])


@router.get("/calls", operation_id="list_calls")
async def list_calls(
    session: SessionDep,
    services: ServicesDep,
    _user: Annotated[User, require(Permission.CALLS_REVIEW)],
    manager_id: Id | None = None,
    direction: Literal["inbound", "outbound", "internal"] | None = None,
    disposition: CallDisposition | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    min_talk_s: Annotated[float | None, Query(ge=0)] = None,
    unscored: bool = False,
    with_recording: bool = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[CallPublic]:
    """The supervisor's recordings review list."""
    query = select(Call).where(Call.state == "ended")
    if manager_id is not None:
        query = query.where(Call.user_id == manager_id)
    if direction is not None:
        query = query.where(Call.direction == direction)
    if disposition is not None:
        query = query.where(Call.disposition == disposition)
    if since is not None:
        query = query.where(Call.started_at >= since)
    if until is not None:
        query = query.where(Call.started_at < until)
    if min_talk_s is not None:
        query = query.where(Call.talk_s >= min_talk_s)
    if unscored:
        query = query.where(Call.score.is_(None))
    root = services.settings.recordings_dir.resolve()
    if with_recording:
        return await _playable_page(session, query, root, page, page_size)
    rows = (
        await session.scalars(
            query.order_by(Call.started_at.desc(), Call.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size + 1)
        )
    ).all()
    items = [await _public(session, c, root) for c in rows[:page_size]]
    total = (page - 1) * page_size + len(rows)
    return Page(items=items, total=total, page=page, page_size=page_size)


async def _playable_page(
    session: SessionDep, query: Select[Call], root: Path, page: int, page_size: int
) -> Page[CallPublic]:
    """Only calls whose recording can be played now, counted exactly: a file not (yet) on
    disk or without sound is not "with recording". The files are looked at, not guessed."""
    pairs = await session.execute(
        query.with_only_columns(Call.id, Recording.file_name)
        .join(Recording, Recording.call_id == Call.id)
        .where(Call.talk_s > 0)
        .order_by(Call.started_at.desc(), Call.id.desc(), Recording.id)
    )
    first: dict[int, str] = {}
    for call_id, file_name in pairs:
        first.setdefault(call_id, file_name)  # the recording a call offers is its first
    ids = [cid for cid, name in first.items() if recording_state(root, name) == "playable"]
    wanted = ids[(page - 1) * page_size : page * page_size]
    calls = {c.id: c for c in await session.scalars(select(Call).where(Call.id.in_(wanted)))}
    items = [await _public(session, calls[cid], root) for cid in wanted]
    return Page(items=items, total=len(ids), page=page, page_size=page_size)


@router.post("/calls/{call_id}/score", operation_id="score_call")
async def score_call(
    call_id: Id,
    body: CallScoreIn,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.CALLS_REVIEW)],
) -> CallPublic:
    call = await session.get(Call, call_id)
    if call is None:
        raise NotFound(f"call #{call_id} not found")
    bad = [k for k, v in body.criteria.items() if not 0 <= v <= 5]
    if bad:
        raise InvalidInput(f"criteria.{bad[0]}", "a score from 0 to 5")
    call.score = {
        "criteria": body.criteria,
        "comment": body.comment,
        "by": user.id,
        "at": utcnow().isoformat(),
    }
    await session.commit()
    return await _public(session, call, services.settings.recordings_dir.resolve())


class RecordingResponse(FileResponse):
    """A malformed Range is ignored and the whole file sent (RFC 9110 §14.2), not a 400."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []


_AUDIO: dict[int | str, dict[str, Any]] = {
    200: {"content": {"audio/wav": {}}, "description": "the recording"}
}


@router.head(
    "/recordings/{recording_id}",
    operation_id="head_recording",
    response_class=RecordingResponse,
    responses=_AUDIO,
)
@router.get(
    "/recordings/{recording_id}",
    operation_id="get_recording",
    response_class=RecordingResponse,
    responses=_AUDIO,
)
async def recording(
    recording_id: Id,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.CALLS_READ)],
) -> FileResponse:
    """The recording as audio/wav with HTTP Range (seeking in the browser)."""
    rec = await session.get(Recording, recording_id)
    call = await session.get(Call, rec.call_id) if rec else None
    if rec is None or call is None:
        raise NotFound(f"recording #{recording_id} not found")
    if not may_hear(user, call):
        raise Forbidden("only supervisors and the user who took the call may listen")
    root = services.settings.recordings_dir.resolve()
    path = (root / rec.file_name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(
            f"the file of recording #{recording_id} is not in the recordings folder"
        ).with_code("recording_missing")
    if not has_sound(path.stat().st_size):
        raise NotFound(f"recording #{recording_id} is empty (the call was not answered)").with_code(
            "recording_empty"
        )
    return RecordingResponse(path, media_type="audio/wav", filename=rec.file_name)


@router.post("/clients/{client_id}/call", status_code=202, operation_id="call_client")
async def call_client(
    client_id: Id,
    body: OriginateRequestIn,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.CALLS_ORIGINATE)],
) -> OriginateAccepted:
    """Click-to-call: the manager's phone rings first, then the client's number is dialled."""
    client = await clients_domain.get_for(session, user, client_id)
    phone = await session.scalar(
        select(ClientPhone).where(
            ClientPhone.id == body.phone_id, ClientPhone.client_id == client.id
        )
    )
    if phone is None:
        raise InvalidInput("phone_id", "not a phone of this client")
    if not user.extension:
        raise InvalidInput("extension", "you have no phone extension").with_code("no_extension")
    pbx = services.links.require_pbx()
    call = Call(
        crm_call_id=f"crm-{uuid.uuid4().hex[:16]}",
        client_id=client.id,
        user_id=user.id,
        direction="outbound",
        state="originating",
        caller=user.extension,
        callee=phone.e164,
        ringing=[],
        agents=[],
    )
    session.add(call)
    await session.commit()
    public = await _public(session, call)
    await services.hub.notify(
        "call.originating",
        public.model_dump(mode="json"),
        users=[user.id],
        roles=[Role.SUPERVISOR.value],
    )
    try:
        await pbx.originate(
            OriginateRequest(
                crm_call_id=call.crm_call_id or "",
                agent=user.extension,
                number=phone.e164.lstrip("+"),
            )
        )
    except PbxError as exc:
        call.state, call.failure, call.ended_at = "failed", exc.reason, utcnow()
        await session.commit()
        await services.hub.notify(
            "call.failed",
            {**public.model_dump(mode="json"), "state": "failed", "reason": exc.reason},
            users=[user.id],
        )
        raise Unavailable(str(exc)).with_code(exc.reason) from exc
    return OriginateAccepted(call=public)
