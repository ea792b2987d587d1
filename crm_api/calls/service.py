"""The calls feature's use cases as the routes ask for them: the journal (one row per PBX
call), the team's missed calls with who calls back, live calls, scoring, recordings and
click-to-call. The call events themselves are written by `consumer.py`; an unanswered
call's follow-up is `followup.py`."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_api.accounts import audit
from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission, allowed
from crm_api.calls import followup, notifier, recordings
from crm_api.calls.access import may_hear
from crm_api.calls.commands import NO_REPLY, pbx_serving
from crm_api.calls.models import Call, Recording, has_sound, recording_state
from crm_api.calls.notifier import call_public
from crm_api.calls.pipeline import CallEventSink, make_stream
from crm_api.calls.schemas import CallbackPublic, CallPublic, MissedCallPublic
from crm_api.clients import service as clients_domain
from crm_api.clients.models import Client, ClientEmail, ClientPhone
from crm_api.clients.timeline.models import Communication
from crm_api.messages.models import OutboxMessage
from crm_api.platform.db.base import utcnow
from crm_api.platform.deps import Services
from crm_api.platform.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from crm_api.sales.models import Deal
from crm_api.tasks.models import Task
from telephony import events as ev
from telephony.pbx import OriginateRequest, Pbx, PbxError

LIVE = ("originating", "ringing", "answered")


async def first_recordings(
    session: AsyncSession, calls: Sequence[Call]
) -> dict[int, tuple[int, str]]:
    """The recording each call offers (its first), for a page of calls: one query."""
    if not calls:
        return {}
    rows = await session.execute(
        select(Recording.call_id, Recording.id, Recording.file_name)
        .where(Recording.call_id.in_([c.id for c in calls]))
        .order_by(Recording.id)
    )
    first: dict[int, tuple[int, str]] = {}
    for call_id, rec_id, file_name in rows:
        first.setdefault(call_id, (rec_id, file_name))
    return first


async def publics(
    session: AsyncSession, calls: Sequence[Call], root: Path | None = None
) -> list[CallPublic]:
    """`root`: the recordings folder, when the answer says whether each file plays."""
    recs = await first_recordings(session, calls)
    out = []
    for call in calls:
        rec = recs.get(call.id)
        public = call_public(call, rec[0] if rec else None)
        if rec is not None and root is not None and public.recording_id is not None:
            public.recording = recording_state(root, rec[1])
        out.append(public)
    return out


async def missed_calls(
    session: AsyncSession, *, open_only: bool, page: int, page_size: int
) -> tuple[list[MissedCallPublic], int]:
    """The team's unanswered inbound calls, newest first, with who calls back; `open_only`
    keeps those whose callback is still to be made (and the anonymous ones)."""
    query = (
        select(Call, Client.name, Task)
        .outerjoin(Client, Client.id == Call.client_id)
        .outerjoin(Task, Task.id == Call.callback_task_id)
        .where(
            Call.state == "ended",
            Call.direction == ev.Direction.INBOUND.value,
            Call.disposition.in_(followup.UNANSWERED),
        )
    )
    if open_only:
        query = query.where(Task.done_at.is_(None))
    rows = (
        await session.execute(
            query.order_by(Call.started_at.desc(), Call.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size + 1)
        )
    ).all()
    shown = await publics(session, [call for call, _, _ in rows[:page_size]])
    items = [
        MissedCallPublic(
            call=public,
            client_name=name,
            callback=None
            if task is None
            else CallbackPublic(
                task_id=task.id,
                assignee_id=task.assignee_id,
                count=int((task.params or {}).get("count") or 1),
                done_at=task.done_at,
            ),
        )
        for public, (_, name, task) in zip(shown, rows[:page_size], strict=True)
    ]
    return items, (page - 1) * page_size + len(rows)


async def originate_call(
    services: Services, user: User, client_id: int, phone_id: int
) -> CallPublic:
    """Click-to-call: the manager's phone rings first, then the client's number is
    dialled. The call is written once; a PBX that refuses makes it fail through the
    call-event pipeline like any other failed Originate."""
    async with services.sessions() as session:
        client = await clients_domain.get_for(session, user, client_id)
        phone = await session.scalar(
            select(ClientPhone).where(
                ClientPhone.id == phone_id, ClientPhone.client_id == client.id
            )
        )
        if phone is None:
            raise InvalidInput("phone_id", "not a phone of this client")
        if not user.extension:
            raise InvalidInput("extension", "you have no phone extension").with_code("no_extension")
        settings = services.settings
        pbx_name = pbx_serving(user.extension, settings.pbx_name, settings.pbx_extensions)
        pbx = services.links.require_pbx(pbx_name)
        call = Call(
            pbx=pbx_name,  # the events of the PBX that places it confirm it
            crm_call_id=f"crm-{uuid.uuid4().hex[:16]}",
            client_id=client.id,
            user_id=user.id,
            direction=ev.Direction.OUTBOUND.value,
            state="originating",
            caller=user.extension,
            callee=phone.e164,
            ringing=[],
            agents=[],
        )
        session.add(call)
        await session.commit()
        public = call_public(call)
    await notifier.publish(services.hub, [notifier.originating(public, user.id)])
    request = OriginateRequest(
        crm_call_id=call.crm_call_id or "",
        agent=user.extension,
        agent_uri=user.sip_address,
        number=phone.e164.lstrip("+"),
    )
    try:
        await pbx.originate(request)
    except PbxError as exc:
        # Unknown outcome: the call's own events, or the sweeper, end it.
        if exc.reason != NO_REPLY:
            failed = ev.OriginateFailed(
                call_id=request.crm_call_id,
                at=utcnow(),
                crm_call_id=request.crm_call_id,
                reason=exc.reason,
            )
            await CallEventSink(make_stream(services), pbx=pbx_name)(failed)
        raise Unavailable(str(exc)).with_code(exc.reason) from exc
    return public


def on_call(user: User, call: Call) -> bool:
    """Supervisors see every call; the others the calls they took, made or that rang them."""
    if allowed(user.role, Permission.CALLS_REVIEW):
        return True
    ext = user.extension
    return call.user_id == user.id or (
        ext is not None and (ext in call.agents or ext in call.ringing)
    )


async def active_for(session: AsyncSession, user: User) -> list[CallPublic]:
    rows = (await session.scalars(select(Call).where(Call.state.in_(LIVE)).order_by(Call.id))).all()
    return await publics(session, [c for c in rows if on_call(user, c)])


@dataclass(frozen=True, slots=True)
class JournalFilter:
    manager_id: int | None = None
    direction: str | None = None
    disposition: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_talk_s: float | None = None
    unscored: bool = False
    with_recording: bool = False


async def journal(
    session: AsyncSession, root: Path, where: JournalFilter, *, page: int, page_size: int
) -> tuple[list[CallPublic], int]:
    """Ended calls, newest first; `with_recording` keeps those whose recording plays now."""
    query = select(Call).where(Call.state == "ended")
    if where.manager_id is not None:
        query = query.where(Call.user_id == where.manager_id)
    if where.direction is not None:
        query = query.where(Call.direction == where.direction)
    if where.disposition is not None:
        query = query.where(Call.disposition == where.disposition)
    if where.since is not None:
        query = query.where(Call.started_at >= where.since)
    if where.until is not None:
        query = query.where(Call.started_at < where.until)
    if where.min_talk_s is not None:
        query = query.where(Call.talk_s >= where.min_talk_s)
    if where.unscored:
        query = query.where(Call.score.is_(None))
    if where.with_recording:
        return await _playable_page(session, query, root, page, page_size)
    rows = (
        await session.scalars(
            query.order_by(Call.started_at.desc(), Call.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size + 1)
        )
    ).all()
    return await publics(session, rows[:page_size], root), (page - 1) * page_size + len(rows)


async def _playable_page(
    session: AsyncSession, query: Select[Call], root: Path, page: int, page_size: int
) -> tuple[list[CallPublic], int]:
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
    return await publics(session, [calls[cid] for cid in wanted], root), len(ids)


async def score(
    session: AsyncSession,
    root: Path,
    user: User,
    call_id: int,
    criteria: dict[str, int],
    comment: str | None,
) -> CallPublic:
    call = await session.get(Call, call_id)
    if call is None:
        raise NotFound(f"call #{call_id} not found")
    bad = [k for k, v in criteria.items() if not 0 <= v <= 5]
    if bad:
        raise InvalidInput(f"criteria.{bad[0]}", "a score from 0 to 5")
    call.score = {
        "criteria": criteria,
        "comment": comment,
        "by": user.id,
        "at": utcnow().isoformat(),
    }
    await session.commit()
    return (await publics(session, [call], root))[0]


async def _on_live_call(
    services: Services, user: User, call_id: int, command: Callable[[Pbx, str], Awaitable[None]]
) -> CallPublic:
    """Runs `command` on the PBX carrying a live call of the user's (staff: any call): its
    own, whichever PBX its agents' extensions are on."""
    async with services.sessions() as session:
        call = await _own_call(session, user, call_id)
        public = call_public(call)
    if call.state not in LIVE or call.pbx_call_id is None:
        # Ended, or a click-to-call the PBX has not placed yet: nothing to act on there.
        raise Conflict(f"call #{call_id} is not connected on the PBX").with_code("call_not_live")
    pbx = services.links.require_pbx(call.pbx)
    try:
        await command(pbx, call.pbx_call_id)
    except PbxError as exc:
        if exc.reason == "call_not_found":  # it ended just now
            raise Conflict(str(exc)).with_code("call_not_live") from exc
        if exc.reason.startswith("pbx_"):  # unreachable, no active telephony, no reply
            raise Unavailable(str(exc)).with_code(exc.reason) from exc
        raise Conflict(str(exc)).with_code(exc.reason) from exc  # the PBX refused
    return public


async def hang_up(services: Services, user: User, call_id: int) -> CallPublic:
    """Ends a live call: the PBX hangs up its client's side; call.ended follows."""
    return await _on_live_call(services, user, call_id, lambda pbx, pbx_id: pbx.hangup(pbx_id))


async def transfer(services: Services, user: User, call_id: int, extension: str) -> CallPublic:
    """Blind transfer: the client's side of a live call goes to `extension`."""
    return await _on_live_call(
        services, user, call_id, lambda pbx, pbx_id: pbx.redirect(pbx_id, extension)
    )


async def _own_call(session: AsyncSession, user: User, call_id: int) -> Call:
    call = await session.get(Call, call_id)
    if call is None:
        raise NotFound(f"call #{call_id} not found")
    if not on_call(user, call):
        raise Forbidden("not a call of yours")
    return call


async def set_result(
    session: AsyncSession, root: Path, user: User, call_id: int, result: str | None
) -> CallPublic:
    """What came of the call, as the one who took (or made) it says after it."""
    call = await _own_call(session, user, call_id)
    call.result = result
    await session.commit()
    return (await publics(session, [call], root))[0]


# Everything that hangs on a card and moves with the caller's number to the chosen one.
_ON_A_CARD = (Call, Communication, Task, Deal, OutboxMessage, ClientPhone, ClientEmail)


async def attach_to_client(
    session: AsyncSession, root: Path, user: User, call_id: int, client_id: int
) -> CallPublic:
    """An unknown number is an existing client's: the card the PBX made for it (nobody has
    touched it) goes, and its number, this call and whatever else it gathered move to the
    client the operator picked."""
    call = await _own_call(session, user, call_id)
    target = await clients_domain.get_for(session, user, client_id)
    if call.client_id == target.id:
        return (await publics(session, [call], root))[0]
    made = await session.get(Client, call.client_id) if call.client_id is not None else None
    if made is None:
        raise InvalidInput("call_id", "the call has no number to attach").with_code("no_number")
    if made.created_by_id is not None or made.updated_by_id is not None:
        raise Conflict(
            f"the number is on client #{made.id}, a card people keep",
            details={"client_id": made.id},
        ).with_code("not_a_new_card")
    for model in _ON_A_CARD:
        await session.execute(
            update(model).where(model.client_id == made.id).values(client_id=target.id)
        )
    audit.record(
        session,
        user,
        action="attach_number",
        entity="client",
        entity_id=target.id,
        client_id=target.id,
        changes={"phones": [call.caller if call.direction == "inbound" else call.callee]},
    )
    await session.execute(delete(Client).where(Client.id == made.id))
    await session.commit()
    await session.refresh(call)
    return (await publics(session, [call], root))[0]


async def recording_file(session: AsyncSession, user: User, recording_id: int, root: Path) -> Path:
    """The recording's file under the recordings root (dated sub-folders included)."""
    rec = await session.get(Recording, recording_id)
    call = await session.get(Call, rec.call_id) if rec else None
    if rec is None or call is None:
        raise NotFound(f"recording #{recording_id} not found")
    if not await may_hear(session, user, call):
        raise Forbidden("only supervisors and the users who took part in the call may listen")
    path = recordings.resolve(root, rec.file_name)
    if path is None or not path.is_file():
        raise NotFound(
            f"the file of recording #{recording_id} is not in the recordings folder"
        ).with_code("recording_missing")
    if not has_sound(path.stat().st_size):
        raise NotFound(f"recording #{recording_id} is empty (the call was not answered)").with_code(
            "recording_empty"
        )
    return path
