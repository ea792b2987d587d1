"""The calls routes: thin; the use cases are in service.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.responses import MalformedRangeHeader

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission
from crm_api.calls import service
from crm_api.calls.schemas import (
    AttachIn,
    CallDisposition,
    CallPublic,
    CallResultIn,
    CallScoreIn,
    MissedCallPublic,
    OriginateAccepted,
    OriginateRequestIn,
    TransferIn,
)
from crm_api.platform.deps import ServicesDep, SessionDep, require
from crm_api.platform.schemas import Id, ItemList, Page

router = APIRouter(tags=["calls"])


@router.get("/calls/active", operation_id="list_active_calls")
async def active_calls(
    session: SessionDep, user: Annotated[User, require(Permission.CALLS_READ)]
) -> ItemList[CallPublic]:
    """Calls in progress that concern this user (all of them for supervisors), so a page
    opened or refreshed during a call shows it."""
    return ItemList(items=await service.active_for(session, user))


@router.get("/calls/missed", operation_id="list_missed_calls")
async def missed_calls(
    session: SessionDep,
    _user: Annotated[User, require(Permission.CALLS_READ)],
    open_only: bool = True,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[MissedCallPublic]:
    """The team's missed calls (missed, abandoned, busy), newest first, each with who
    calls back; by default only those still to be called back."""
    items, total = await service.missed_calls(
        session, open_only=open_only, page=page, page_size=page_size
    )
    return Page(items=items, total=total, page=page, page_size=page_size)


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
    """The calls journal (supervisors): every ended call, anonymous callers included."""
    items, total = await service.journal(
        session,
        services.settings.recordings_dir.resolve(),
        service.JournalFilter(
            manager_id=manager_id,
            direction=direction,
            disposition=disposition,
            since=since,
            until=until,
            min_talk_s=min_talk_s,
            unscored=unscored,
            with_recording=with_recording,
        ),
        page=page,
        page_size=page_size,
    )
    return Page(items=items, total=total, page=page, page_size=page_size)


@router.post("/calls/{call_id}/score", operation_id="score_call")
async def score_call(
    call_id: Id,
    body: CallScoreIn,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.CALLS_REVIEW)],
) -> CallPublic:
    root = services.settings.recordings_dir.resolve()
    return await service.score(session, root, user, call_id, body.criteria, body.comment)


@router.post("/calls/{call_id}/result", operation_id="set_call_result")
async def set_call_result(
    call_id: Id,
    body: CallResultIn,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.CALLS_READ)],
) -> CallPublic:
    """What came of the call, picked after it by whoever took or made it."""
    root = services.settings.recordings_dir.resolve()
    return await service.set_result(session, root, user, call_id, body.result)


@router.post("/calls/{call_id}/attach", operation_id="attach_call_number")
async def attach_call_number(
    call_id: Id,
    body: AttachIn,
    session: SessionDep,
    services: ServicesDep,
    user: Annotated[User, require(Permission.CLIENTS_WRITE)],
) -> CallPublic:
    """An unknown caller is an existing client: the number (and the call) go to that card,
    the card the PBX made for the number goes."""
    root = services.settings.recordings_dir.resolve()
    return await service.attach_to_client(session, root, user, call_id, body.client_id)


@router.post("/calls/{call_id}/hangup", status_code=202, operation_id="hang_up_call")
async def hang_up_call(
    call_id: Id, services: ServicesDep, user: Annotated[User, require(Permission.CALLS_READ)]
) -> CallPublic:
    """Ends a live call (its agent's, or staff): the PBX hangs up the client's side and
    call.ended follows. 409 call_not_live when it is over, 503 when no PBX takes it."""
    return await service.hang_up(services, user, call_id)


@router.post("/calls/{call_id}/transfer", status_code=202, operation_id="transfer_call")
async def transfer_call(
    call_id: Id,
    body: TransferIn,
    user: Annotated[User, require(Permission.CALLS_READ)],
    services: ServicesDep,
) -> CallPublic:
    """Blind transfer of a live call (its agent's, or staff): the client's side goes to
    the extension, whose ring follows as call.ringing. Errors as for hangup."""
    return await service.transfer(services, user, call_id, body.extension)


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
    path = await service.recording_file(
        session, user, recording_id, services.settings.recordings_dir
    )
    return RecordingResponse(path, media_type="audio/wav", filename=path.name)


@router.post("/clients/{client_id}/call", status_code=202, operation_id="call_client")
async def call_client(
    client_id: Id,
    body: OriginateRequestIn,
    services: ServicesDep,
    user: Annotated[User, require(Permission.CALLS_ORIGINATE)],
) -> OriginateAccepted:
    """Click-to-call: the manager's phone rings first, then the client's number is dialled."""
    return OriginateAccepted(
        call=await service.originate_call(services, user, client_id, body.phone_id)
    )
