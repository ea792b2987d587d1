"""Call events in, CRM facts and live frames out: the calls journal (one row per PBX call,
numbers in E.164, times on the PBX's clock), the pop, the recordings, and the follow-up
of unanswered calls (`followup.py`).

A run of one call's events is one transaction; frames are published after the commit.
One exception, the pop: the card it shows was committed at the call's start and the ring
is the PBX's fact, so a ring of a call started in this process is pushed before its
bookkeeping is written — no database round trip stands between the PBX and the screen.
A run of rings, answers and recordings of a live call whose row this process wrote last
needs no transaction at all: it is applied to that row and written with one guarded UPDATE
(and the recording's INSERT), each committing on its own; nor does a known caller's
start, whose one write is the call's INSERT (the card is only read). Its end reads no row
either: it is written from that live row, its UPDATE guarded; on PostgreSQL an answered
end on its card is one statement with no transaction (`_end_of`). Events are processed
idempotently: a replay after a reconnect or a retried stream entry finds the call already
in that state and changes and pushes nothing.

Every run's statements are prebuilt Core statements run straight on a pooled asyncpg
connection (`platform/db/direct.py`), in a transaction where the run needs one: a call
event costs a few statements, and a session's machinery cost more CPU than they do. A run
that comes to work done through the ORM (a missed call's callback) is done again in a
session; a new number's start, found new without a transaction, goes to one at once."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    Float,
    Integer,
    Select,
    String,
    Table,
    Update,
    bindparam,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import event as orm_event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.accounts.models import User
from crm_api.calls import followup, notifier, recordings
from crm_api.calls.models import Call, CallParticipant, CallRow, Recording, recording_state
from crm_api.calls.notifier import Frames, call_data
from crm_api.clients import phones
from crm_api.clients import service as clients_domain
from crm_api.clients.models import Client
from crm_api.clients.schemas import CallerCard
from crm_api.clients.summary import (
    NOBODY,
    POP_CARD_BY_PHONE,
    caller_card,
    caller_card_by_phone,
)
from crm_api.clients.timeline import service as communications
from crm_api.clients.timeline.models import CommDirection, CommKind
from crm_api.platform.db.base import utcnow
from crm_api.platform.db.direct import Queryable, connect_direct, core_rows
from crm_api.platform.db.session import InsertNew, make_autocommit_sessionmaker
from crm_api.platform.errors import DuplicateContact
from crm_api.platform.realtime.hub import Hub
from crm_api.platform.realtime.outage import Outage, is_outage
from telephony import events as ev

log = logging.getLogger(__name__)
PREPARED_POPS = 10_000  # calls between start and end at once, at most
EXTENSIONS_TTL = 5.0  # seconds the extension → user map serves, at most
# What callers' phones send when there is no name to show.
_NO_NAMES = frozenset({"anonymous", "unknown", "unavailable", "restricted", "private", "null"})


def person_name(name: str | None) -> str | None:
    """A caller name a card may carry: not digits, not a placeholder for nobody."""
    cleaned = (name or "").strip()
    if cleaned.strip("<>").lower() in _NO_NAMES or not any(c.isalpha() for c in cleaned):
        return None
    return cleaned[:200]


class _UserWrites:
    """Users written through this process's ORM: each write makes every extension map of
    the process stale, so a change made here is seen by the next call event."""

    count = 0

    @staticmethod
    def seen(*_: object) -> None:
        _UserWrites.count += 1


for _write in ("after_insert", "after_update", "after_delete"):
    orm_event.listen(User, _write, _UserWrites.seen)


# Built once: every call event locks its call, and building a statement costs more CPU
# than sending it.
# A call already written is read as a row (Core) and its changes written back with one
# UPDATE of what changed: the ORM's loading and unit of work cost several times more CPU
# than the statements, and every call event reads and writes its call.
_CALLS = cast(Table, Call.__table__)
_ROW_BY_PBX_ID = (
    select(_CALLS)
    .where(_CALLS.c.pbx == bindparam("pbx"), _CALLS.c.pbx_call_id == bindparam("id"))
    .with_for_update()
)
_ROW_BY_CRM_ID = select(_CALLS).where(_CALLS.c.crm_call_id == bindparam("id")).with_for_update()


def _set(columns: frozenset[str]) -> Update:
    """An UPDATE of these columns of one call (parameters not named after them)."""
    values: dict[str, Any] = {column: bindparam(f"new_{column}") for column in columns}
    return update(_CALLS).where(_CALLS.c.id == bindparam("row_id")).values(values)


@functools.lru_cache(maxsize=64)
def _update_of(columns: frozenset[str]) -> Update:
    """`_set`, returning the call's id (what a statement run as its rows must return)."""
    return _set(columns).returning(_CALLS.c.id)


# What a ring or an answer decides from: a live row that no longer has these values was
# changed by someone else since this process wrote it.
_LIVE_GUARD = ("state", "ringing", "agents")


# What a run in a transaction decides from as well, when it read the live row instead of
# locking the call: the card its communication goes on.
_READ_GUARD = (*_LIVE_GUARD, "client_id")


_RECORDINGS = cast(Table, Recording.__table__)


@functools.lru_cache(maxsize=64)
def _live_update_of(columns: frozenset[str], guard: tuple[str, ...] = _LIVE_GUARD) -> Update:
    """`_update_of` if the call is still as this process last wrote it, returning the row
    (the columns other writers change, the card a number was attached to say, are fresh)."""
    unchanged = [_CALLS.c[column] == bindparam(f"old_{column}") for column in guard]
    return _set(columns).where(*unchanged).returning(*_CALLS.c)


@functools.lru_cache(maxsize=64)
def _end_of(columns: frozenset[str]) -> Select[Any]:
    """An answered call's end in one statement (PostgreSQL): if the call is still as this
    process last wrote it, its communication (`timeline.new_fact_from`), who talked, its
    card's open callback closed and these columns of its row, returning the row; nothing
    at all when it was changed meanwhile, or the communication was written before (a
    replay, which the transaction writes)."""
    row_id = bindparam("row_id", type_=_CALLS.c.id.type)
    still = (
        select(_CALLS.c.id)
        .where(
            _CALLS.c.id == row_id,
            *(_CALLS.c[column] == bindparam(f"old_{column}") for column in _READ_GUARD),
        )
        .with_for_update()
        .cte("still")
    )
    fact = communications.new_fact_from(still)
    written = exists(select(fact.c.id))
    talked = (
        func.unnest(
            bindparam("talked_users", type_=ARRAY(Integer)),
            bindparam("talked_extensions", type_=ARRAY(String)),
            bindparam("talked_s", type_=ARRAY(Float)),
        )
        .table_valued("user_id", "extension", "talk_s")
        .render_derived()
    )
    participants = (
        insert(_PARTICIPANTS)
        .from_select(
            ["call_id", "user_id", "extension", "talk_s"],
            select(row_id, talked.c.user_id, talked.c.extension, talked.c.talk_s).where(written),
        )
        .cte("talked")
    )
    closed = (
        followup.closing_callbacks(bindparam("card"), bindparam("closed_at"))
        .where(written)
        .cte("closed")
    )
    values: dict[str, Any] = {column: bindparam(f"new_{column}") for column in columns}
    values["communication_id"] = select(fact.c.id).scalar_subquery()
    ended = (
        update(_CALLS).where(_CALLS.c.id == row_id, written).values(values).returning(*_CALLS.c)
    ).cte("ended")
    return select(ended).add_cte(participants, closed)


class _Moved(Exception):
    """The live row a run read instead of locking the call was changed meanwhile."""


class _NeedsTransaction(Exception):
    """A start tried without a transaction has more to write than the call's row."""


class _NeedsSession(_NeedsTransaction):
    """A run on a direct connection came to work done through the ORM (a new number's
    card, a missed call's callback): the run is done again in a session."""


@functools.lru_cache(maxsize=64)
def _insert_of(columns: frozenset[str]) -> InsertNew:
    """A call's first row with these columns given (the others NULL: a JSON column's
    None would be JSON null); nothing when the call has one."""
    values: dict[str, Any] = {column: bindparam(f"v_{column}") for column in columns}
    return InsertNew(_CALLS, ["pbx", "pbx_call_id"], values=values)


_PARTICIPANTS = cast(Table, CallParticipant.__table__)
_ADD_PARTICIPANT = insert(_PARTICIPANTS).returning(_PARTICIPANTS.c.user_id)
_RECORDINGS_OF = (
    select(_RECORDINGS.c.id, _RECORDINGS.c.file_name)
    .where(_RECORDINGS.c.call_id == bindparam("id"))
    .order_by(_RECORDINGS.c.id)
)
_ADD_RECORDING = InsertNew(
    _RECORDINGS,
    ["call_id", "file_name"],
    values={
        "call_id": bindparam("call"),
        "pbx_path": bindparam("path"),
        "file_name": bindparam("name"),
        "created_at": bindparam("at"),
    },
)
_ACTIVE_EXTENSIONS = select(User.extension, User.id).where(
    User.is_active.is_(True), User.extension.is_not(None)
)

# What every call runs on a direct connection, whatever changed (the rest is built per
# change): compiled when the service starts.
HOT_STATEMENTS = (POP_CARD_BY_PHONE, _ROW_BY_PBX_ID, _RECORDINGS_OF, _ACTIVE_EXTENSIONS)

# Runs of these events need no lock and no transaction on a call whose row this process
# committed last: a ring or an answer is one guarded UPDATE, a recording one INSERT.
_LIVE_EVENTS = (ev.CallRinging, ev.CallAnswered, ev.RecordingStarted)
_LIVE_STATES = ("ringing", "answered")

# Each call event names the same few numbers again (caller, DID, callee): parsed once.
_e164 = functools.lru_cache(maxsize=PREPARED_POPS)(phones.try_normalize)


CallKey = tuple[str, str]  # a call's identity: its PBX's name and that PBX's call id
Recorded = tuple[tuple[int, str], ...]  # a call's recordings: their ids and file names


def _a_start(events: Sequence[ev.CallEvent]) -> bool:
    """A run of one inbound call's start, not a call placed through the CRM."""
    match events:
        case [ev.CallStarted(direction=ev.Direction.INBOUND, crm_call_id=None)]:
            return True
    return False


@dataclass(slots=True)
class _Prepared:
    """An inbound call's pop, made at its start."""

    client_id: int
    summary: dict[str, Any]  # the CallerCard, as the frame carries it
    call: dict[str, Any]  # call_state as the start left it
    popped: list[str]  # agents whose pop went out ahead of its commit


@dataclass(frozen=True, slots=True)
class _Ending:
    """What an answered call's end writes beside its row: who talked, the communication
    on the card, and the card's open callback closed (the call got through)."""

    fact: communications.Fact
    talked: list[dict[str, Any]]  # the call's participants' rows
    closed_at: datetime


@dataclass(slots=True, eq=False)
class _Run:
    """One run of a call's events: where it writes, how, and what it read and made."""

    # A session, or a direct connection (`run.session` then raises `_NeedsSession`).
    db: Queryable
    # Every call is read locked; otherwise a live call is taken from this process's row.
    locked: bool = True
    # A known caller's start, without a transaction (its one write is the call's INSERT).
    autocommit: bool = False
    # Delivered before: a pop or answer already written may never have gone out.
    again: bool = False
    calls: dict[CallKey, CallRow] = field(default_factory=dict)  # each call, read once a run
    # The calls read as rows, with the row as read: `_write_read_calls` writes the changes.
    read: list[tuple[CallRow, dict[str, Any]]] = field(default_factory=list)
    unlocked: set[int] = field(default_factory=set)  # ids of the calls taken from live rows
    prepared: dict[CallKey, _Prepared] = field(default_factory=dict)  # pops made at starts
    # An answered call's end whose writes go out in one statement with its row's
    # (`CallService._on_live_row`): `_ended` leaves them here instead of writing them.
    folding: bool = False
    ending: _Ending | None = None

    @property
    def session(self) -> AsyncSession:
        if not isinstance(self.db, AsyncSession):
            raise _NeedsSession
        return self.db


_COLUMNS = tuple(column.key for column in _CALLS.c)


def _row(call: CallRow) -> dict[str, Any]:
    return {column: getattr(call, column) for column in _COLUMNS}


def _as_read(row: dict[str, Any]) -> dict[str, Any]:
    """The row as reading it back gives it (times in UTC): what a frame made from it says
    is what it would say made from the row read."""
    return {k: v.astimezone(UTC) if isinstance(v, datetime) else v for k, v in row.items()}


async def _write_read_calls(run: _Run) -> None:
    """What the run changed of the calls it read as rows, one UPDATE each. A call read
    from this process's live row, not locked, is written only if it is still as read
    (`_Moved` otherwise: the run is done again on the locked row)."""
    for call, read in run.read:
        changed = {column: getattr(call, column) for column in read}
        changed = {column: value for column, value in changed.items() if value != read[column]}
        params = {f"new_{column}": value for column, value in changed.items()}
        if id(call) in run.unlocked:
            params = {"new_state": call.state, **params}  # written even if unchanged: checked
            params.update({f"old_{column}": read[column] for column in _READ_GUARD})
            statement = _live_update_of(frozenset({"state", *changed}), _READ_GUARD)
            if not await core_rows(run.db, statement, {"row_id": call.id, **params}):
                raise _Moved
        elif changed:
            await core_rows(run.db, _update_of(frozenset(changed)), {"row_id": call.id, **params})


async def _write_end(
    db: Queryable, call: CallRow, read: dict[str, Any], ending: _Ending
) -> dict[str, Any] | None:
    """`_end_of` for this call: its row as written, or None when nothing was written."""
    changed = {column: value for column, value in _row(call).items() if value != read[column]}
    changed.pop("communication_id", None)  # the statement's
    params = {f"new_{column}": value for column, value in changed.items()}
    params["new_state"] = call.state
    params.update({f"old_{column}": read[column] for column in _READ_GUARD})
    params.update(communications.fact_params(ending.fact))
    talked = ending.talked
    params["talked_users"] = [row["user_id"] for row in talked]
    params["talked_extensions"] = [row["extension"] for row in talked]
    params["talked_s"] = [row["talk_s"] for row in talked]
    params.update(row_id=call.id, card=ending.fact.client_id, closed_at=ending.closed_at)
    rows = await core_rows(db, _end_of(frozenset({"state", *changed})), params)
    return rows[0]._asdict() if rows else None


class CallService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hub: Hub,
        *,
        region: str,
        recordings_dir: Path,
        tz: ZoneInfo,
        pick: followup.Picker | None = None,
        pbx: str,
    ) -> None:
        """`pbx`: the PBX of the events that name none (sent before the name travelled)."""
        self._sessions = sessions
        self._engine = sessions.kw["bind"]
        # For the runs that need no transaction: set on the engine once, not on each run's
        # connection.
        self._statements = make_autocommit_sessionmaker(self._engine)
        self._pbx = pbx
        self._hub = hub
        self._region = region
        self._recordings_dir = recordings_dir
        self._tz = tz
        self._pick = pick
        # The pop made while the call is still in the dialplan, so the ring only has to
        # push it. Per process: a call whose start another worker handled (or that a
        # restart forgot) makes its summary at the ring, in the transaction.
        self._prepared: OrderedDict[CallKey, _Prepared] = OrderedDict()
        # Of active users, read at most EXTENSIONS_TTL ago and since this process last wrote
        # a user: a user changed by another worker is seen within EXTENSIONS_TTL.
        self._extensions: dict[str, int] = {}
        self._extensions_read = -EXTENSIONS_TTL
        self._extensions_writes = -1
        self._pushing: dict[CallKey, list[tuple[str, asyncio.Task[Any]]]] = {}  # call → pops
        # The row of each live inbound call as this process committed it last, while it
        # handles the call's events (`forget` drops those another worker may have moved on).
        self._live: OrderedDict[CallKey, dict[str, Any]] = OrderedDict()
        self._bus_outage = Outage("call frames: the realtime bus", log)

    def ring_ahead(self, event: ev.CallRinging) -> None:
        """Pushes the pop of a call prepared here now, without waiting for anything; the
        call's next run waits for the push, so the call's later frames follow it."""
        early = self._early_pop(event)
        if early is not None:
            pushing = notifier.push(self._hub, early)
            pushes = self._pushing.setdefault(self._key(event), [])
            pushes.append((event.agent, asyncio.create_task(pushing)))

    async def handle(self, events: Sequence[ev.CallEvent], *, again: bool = False) -> None:
        """Events of one call that arrived together, in order: one transaction (or, for a
        live call's rings, answers and recordings, one statement each; a start with events
        behind it is written first on its own). `again`: they were delivered before
        (see streams.Handler)."""
        if len(events) > 1 and _a_start(events[:1]):
            # As when they come apart: a ring among the rest (behind the recording's start,
            # as Asterisk sends them) then pops ahead of its write, not after one
            # transaction of the whole run.
            await self.handle(events[:1], again=again)
            events = events[1:]
        for event in events:
            if isinstance(event, ev.CallRinging):
                self.ring_ahead(event)  # when the stream did not already
        for key in {self._key(event) for event in events}:
            await self._pushed(key)
        try:
            frames = None
            with contextlib.suppress(_NeedsTransaction):  # (or a session)
                frames = await self._on_live_row(events, again)
            in_session = False
            if frames is None and _a_start(events):
                try:
                    frames = await self._in_transaction(
                        events, locked=False, again=again, autocommit=True
                    )
                except _NeedsSession:
                    in_session = True  # not worth a try on a direct connection either
                except _NeedsTransaction:
                    pass
            if frames is None:
                try:
                    frames = await self._in_transaction(
                        events, locked=False, again=again, in_session=in_session
                    )
                except _Moved:
                    self.forget({self._key(event) for event in events}.__contains__)
                    frames = await self._in_transaction(
                        events, locked=True, again=again, in_session=in_session
                    )
        except BaseException:
            # Written or not: the next run of these calls reads their rows.
            calls = {self._key(event) for event in events}
            self.forget(calls.__contains__)
            raise
        await self._publish(frames)

    def forget(self, whose: Callable[[CallKey], bool]) -> None:
        """Drops the live rows of the calls `whose` says: another worker may have handled
        their events since (a partition this worker takes over again)."""
        for key in [key for key in self._live if whose(key)]:
            del self._live[key]

    async def _in_transaction(
        self,
        events: Sequence[ev.CallEvent],
        *,
        locked: bool,
        again: bool,
        autocommit: bool = False,
        in_session: bool = False,
    ) -> Frames:
        """`locked`: every call is read locked; otherwise a live call is taken from this
        process's row of it and its UPDATE checks that it is still so. `autocommit`: a
        known caller's start, whose one write is the call's INSERT, needs no transaction
        (`_NeedsTransaction` when it turns out to be another start, `_NeedsSession` when
        its caller is a new number). The statements go straight on a pooled connection
        unless the run needs the ORM (`in_session`, or found out: `_NeedsSession`): then it
        is done in a session."""
        if autocommit:
            direct = connect_direct(self._engine, self._statements)
            return await self._run_on(direct, events, locked, again, autocommit=True)
        if not in_session:
            with contextlib.suppress(_NeedsSession):
                direct = connect_direct(self._engine, self._sessions, transaction=True)
                return await self._run_on(direct, events, locked, again)
        return await self._run_on(self._sessions(), events, locked, again)

    async def _run_on(
        self,
        opened: AbstractAsyncContextManager[Queryable],
        events: Sequence[ev.CallEvent],
        locked: bool,
        again: bool,
        *,
        autocommit: bool = False,
    ) -> Frames:
        frames: Frames = []
        async with opened as db:
            run = _Run(db, locked=locked, autocommit=autocommit, again=again)
            # A call's row is written once per transaction where it can be (its changes
            # go out with the commit), not before every read of the run; what a read
            # needs written is flushed where it is needed.
            with db.no_autoflush if isinstance(db, AsyncSession) else contextlib.nullcontext():
                for event in events:
                    frames += await self._apply(run, event)
            await _write_read_calls(run)
            if isinstance(db, AsyncSession):
                await db.commit()
        # Only what was committed: a start rolled back may have made a card that never was.
        self._prepared.update(run.prepared)
        while len(self._prepared) > PREPARED_POPS:
            self._prepared.popitem(last=False)
        for key, call in run.calls.items():
            self._remember(key, _as_read(_row(call)))
        return frames

    def _remember(self, key: CallKey, row: dict[str, Any]) -> None:
        self._live.pop(key, None)
        if row["state"] in _LIVE_STATES and row["direction"] == ev.Direction.INBOUND:
            self._live[key] = row
            while len(self._live) > PREPARED_POPS:
                self._live.popitem(last=False)

    async def _on_live_row(self, events: Sequence[ev.CallEvent], again: bool) -> Frames | None:
        """A run of rings, answers and recordings (and on PostgreSQL an answered end) of a
        live call whose row this process committed last, applied to that row: each
        statement commits on its own (the run's one UPDATE of the call, guarded, is its
        only write to it; an end's writes go with it, `_end_of`). None when the run is not
        such a run, or the row was changed by someone else meanwhile."""
        key = self._key(events[0])
        read = self._live_row_for(key, events)
        if read is None:
            return None
        call = CallRow(**read)
        frames: Frames = []
        folding = isinstance(events[-1], ev.CallEnded)
        async with connect_direct(self._engine, self._statements) as db:
            run = _Run(db, calls={key: call}, again=again, folding=folding)
            for event in events:
                frames += await self._apply(run, event)
            if run.ending is None:
                written = await self._write_live(db, call, read)
            else:
                written = await _write_end(db, call, read, run.ending)
                if written is not None:
                    call.communication_id = written["communication_id"]
        if written is None:
            self._live.pop(key, None)  # the transaction reads the row
            return None
        self._remember(key, written)
        if written != _row(call):
            # Another writer's columns (a card attached meanwhile): the frames say them too.
            public = call_data(CallRow(**written))
            frames = [(type_, {**data, **public}, users) for type_, data, users in frames]
        return frames

    def _live_row_for(self, key: CallKey, events: Sequence[ev.CallEvent]) -> dict[str, Any] | None:
        """The live row of the call if this run is all rings, answers and recordings of it,
        and its rings need no card made (one was made at the start): nothing but the
        call's UPDATE and the recording's INSERT is written. On PostgreSQL the run may end
        with the call's end: an answered call's end on its card is one statement with its
        row's UPDATE (`_end_of`); any other end is found out (`_NeedsTransaction`) before
        it writes."""
        read = self._live.get(key)
        prepared = self._prepared.get(key)
        if read is None:
            return None
        ends = self._engine.dialect.driver == "asyncpg" and isinstance(events[-1], ev.CallEnded)
        if ends and self._key(events[-1]) != key:
            return None
        for event in events[:-1] if ends else events:
            if not isinstance(event, _LIVE_EVENTS) or self._key(event) != key:
                return None
            if isinstance(event, ev.CallRinging) and (
                prepared is None or prepared.client_id != read["client_id"]
            ):
                return None
        return read

    async def _write_live(
        self, db: Queryable, call: CallRow, read: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The call's row after this run's changes, or None when it is not as `read` any
        more (nothing was written)."""
        changed = {column: value for column, value in _row(call).items() if value != read[column]}
        if not changed:
            return read
        params = {f"new_{column}": value for column, value in changed.items()}
        params.update({f"old_{column}": read[column] for column in _LIVE_GUARD})
        statement = _live_update_of(frozenset(changed))
        rows = await core_rows(db, statement, {"row_id": call.id, **params})
        return rows[0]._asdict() if rows else None

    async def _publish(self, frames: Frames) -> None:
        """After the commit, the frames must go out: a retry of the run would find the
        call already in its state and push nothing, so they wait for the bus here. Each
        frame is made once: the retry of a publish whose reply was lost sends the same
        frame, which readers drop if the first attempt did go out."""
        pause = 0.1
        for frame in map(notifier.frame, frames):
            while True:
                try:
                    await self._hub.publish(frame)
                    break
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    self._bus_outage.failed(exc)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 2.0)
        self._bus_outage.ok()

    async def _pushed(self, key: CallKey) -> None:
        pushes = self._pushing.pop(key, [])
        outcomes = await asyncio.gather(*(push for _, push in pushes), return_exceptions=True)
        prepared = self._prepared.get(key)
        for (agent, _), outcome in zip(pushes, outcomes, strict=True):
            failed = isinstance(outcome, BaseException)
            if failed and prepared is not None and agent in prepared.popped:
                prepared.popped.remove(agent)  # not out: the retry pushes it
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _early_pop(self, event: ev.CallRinging) -> notifier.Outgoing | None:
        """The pop of a call prepared here, to an agent whose user is known, once."""
        prepared = self._prepared.get(self._key(event))
        if prepared is None or event.agent in prepared.popped:
            return None
        if event.agent in prepared.call["ringing"]:
            return None  # rang before this start was sent again: popped then
        user_id = self._extensions.get(event.agent)
        if user_id is None:
            return None  # not a known agent's phone: the transaction finds out who it is
        prepared.popped.append(event.agent)
        call = {
            **prepared.call,
            "caller": event.caller or prepared.call["caller"],
            "ringing": [*prepared.call["ringing"], *prepared.popped],
        }
        return notifier.ringing(call, event.agent, user_id, prepared.summary)

    async def _apply(self, run: _Run, event: ev.CallEvent) -> Frames:
        call = await self._call_for(run, event)
        if isinstance(event, ev.CallStarted):
            return await self._started(run, call, event)
        if call.state in ("ended", "failed"):
            if isinstance(event, ev.CallEnded) and call.ended_at == event.at:
                # The end that wrote it, sent again: its frames may never have gone out
                # (the worker died, or its publish failed, after the commit).
                return await self._ended_again(run.session, call)
            return []  # an event after the end (replay, late leg): the call is written
        if isinstance(event, ev.CallRinging):
            return await self._ringing(run, call, event)
        if isinstance(event, ev.CallAnswered):
            return await self._answered(run, call, event)
        if isinstance(event, ev.CallTransferred):
            if event.to_agent not in call.agents and event.to_agent.isdigit():
                call.ringing = [*call.ringing, event.to_agent]
            return []
        if isinstance(event, ev.RecordingStarted):
            await self._recording(run, call, event)
            return []
        if isinstance(event, ev.CallEnded):
            return await self._ended(run, call, event)
        if isinstance(event, ev.CallRouted):
            # Only what AMI has not said (its events may never come): who and which DID.
            self._numbers(call, call.caller or event.caller, call.callee or event.did, event.did)
            if call.direction == ev.Direction.INBOUND:
                call.caller_name = call.caller_name or person_name(event.caller_name)
            return []
        if isinstance(event, ev.OriginateFailed):
            call.state, call.failure, call.ended_at = "failed", event.reason, event.at
            return [notifier.failed(call, event.reason)]
        if isinstance(event, ev.CallDialling):
            return [notifier.dialling(call)]
        return []

    def _key(self, event: ev.CallEvent) -> CallKey:
        return event.pbx or self._pbx, event.call_id

    async def _call_for(self, run: _Run, event: ev.CallEvent) -> CallRow:
        # Events of one run share the transaction: the call is locked and read once.
        key = self._key(event)
        if key in run.calls:
            return run.calls[key]
        run.calls[key] = call = await self._lock_call(run, key, event)
        return call

    async def _lock_call(self, run: _Run, key: CallKey, event: ev.CallEvent) -> CallRow:
        live = None if run.locked else self._live.get(key)
        if live is not None:
            # The row this process wrote last: its UPDATE at the commit checks it still is.
            call = CallRow(**live)
            run.read.append((call, dict(live)))
            run.unlocked.add(id(call))
            return call
        pbx = key[0]
        # The start of a call the PBX placed is not looked for: its INSERT finds out.
        new = isinstance(event, ev.CallStarted) and not event.crm_call_id
        found = None if new else await self._read_locked(run, key, event)
        if found is not None:
            return found
        # The first we hear of it (adapter restarted mid-call, resync).
        direction = getattr(event, "direction", ev.Direction.INBOUND)
        call = CallRow(
            pbx=pbx,
            pbx_call_id=event.call_id,
            crm_call_id=event.crm_call_id,
            direction=str(direction),
            state="ringing",
            started_at=event.at,
            ringing=[],
            agents=[],
        )
        if new:
            return call  # the start writes it with its card (`_insert_new`)
        return await self._insert_new(run, call, event)

    async def _read_locked(self, run: _Run, key: CallKey, event: ev.CallEvent) -> CallRow | None:
        pbx = key[0]
        rows = await core_rows(run.db, _ROW_BY_PBX_ID, {"pbx": pbx, "id": event.call_id})
        if not rows and event.crm_call_id:
            rows = await core_rows(run.db, _ROW_BY_CRM_ID, {"id": event.crm_call_id})
        if not rows:
            return None
        row = rows[0]._asdict()
        # Not in the session: `_write_read_calls` writes what the run changed.
        call = CallRow(**row)
        run.read.append((call, dict(row)))
        # A click-to-call's, found by the CRM's id: the PBX that placed it says which it is.
        call.pbx, call.pbx_call_id = pbx, event.call_id
        return call

    async def _insert_new(self, run: _Run, call: CallRow, event: ev.CallEvent) -> CallRow:
        """The call written (at its start, or the first event heard of it), or the row the
        PBX's call already has (a replay, or another worker's start): that one, locked, for
        the event to be applied to."""
        values = {column: getattr(call, column) for column in _COLUMNS}
        values = {column: value for column, value in values.items() if value is not None}
        statement = _insert_of(frozenset(values)).on(run.db)
        rows = await core_rows(run.db, statement, {f"v_{k}": v for k, v in values.items()})
        inserted = rows[0]._asdict() if rows else None
        key = self._key(event)
        if inserted is None and run.autocommit:
            raise _NeedsTransaction  # the call has its row: the start is applied to it locked
        if inserted is not None:
            call.id = inserted["id"]
            # Not in the session: what later events of the run change is written at the end.
            run.read.append((call, {**inserted}))
            return call
        existing = await self._read_locked(run, key, event)
        assert existing is not None, f"call {key}: neither inserted nor found"
        run.calls[key] = existing
        return existing

    def _e164(self, number: str | None) -> str | None:
        return _e164(number, self._region)

    def _party(self, call: CallRow) -> str | None:
        """The external party's number in E.164: None for an internal call, and for an
        anonymous, withheld or garbage number (nobody to put the call on)."""
        if call.direction == ev.Direction.INTERNAL:
            return None
        return self._e164(call.caller if call.direction == ev.Direction.INBOUND else call.callee)

    async def _client_for(self, run: _Run, call: CallRow) -> tuple[Client | None, bool]:
        """The card of the external party; a fresh card for an unknown number, named
        after the caller when the PBX gave a person's name. Its own columns only, no
        related objects: the pop's summary is one query of its own."""
        e164 = self._party(call)
        if e164 is None:
            return None, False
        session = run.session
        if call.client_id is not None:
            # From the session when an earlier event of the run loaded it.
            client = await session.get(Client, call.client_id)
            if client is not None:
                return client, False
        name = call.caller_name if call.direction == ev.Direction.INBOUND else None
        try:
            client, created = await clients_domain.find_or_create_by_phone(
                session, e164, source_code="incoming_call", name=name, load=()
            )
        except (IntegrityError, DuplicateContact):
            # Another call from the same new number made its card at the same moment (its
            # savepoint is undone, this transaction goes on): that card is the one.
            client, created = await clients_domain.find_or_create_by_phone(
                session, e164, source_code="incoming_call", name=name, load=()
            )
        call.client_id = client.id
        return client, created

    def _card_of(self, call: CallRow) -> int | None:
        """The card an earlier event of the call found (as `_client_for` would)."""
        if call.client_id is None:
            return None
        return call.client_id if self._party(call) is not None else None

    async def _user_id_of(self, db: Queryable, extension: str | None) -> int | None:
        """The id of the active user on `extension`, from the map; an extension the map
        lacks is looked for again (a user given it a moment ago)."""
        if not extension:
            return None
        await self._read_extensions(db, fresh=extension not in self._extensions)
        return self._extensions.get(extension)

    async def _started(self, run: _Run, call: CallRow, event: ev.CallStarted) -> Frames:
        if call.state in ("ended", "failed"):
            return []  # a replay: the call is written, nothing to prepare
        call.direction = str(event.direction)
        self._numbers(call, event.caller, event.callee, event.did)
        if call.direction == ev.Direction.INBOUND:
            call.caller_name = call.caller_name or person_name(event.caller_name)
        if call.state == "originating":
            call.state = "ringing"
        inbound = call.direction == ev.Direction.INBOUND
        card = await self._known_caller(run.db, call) if inbound else None
        if card is None and run.autocommit and self._party(call) is not None:
            raise _NeedsSession  # a new number's card is made with the call, in a session
        if card is None:
            client, made = await self._client_for(run, call)
            if client is not None and inbound:
                card = await caller_card(run.session, client, made=made)
        if call.id is None:  # the frames and the run's next events need its id
            written = await self._insert_new(run, call, event)
            if written is not call:
                return await self._started(run, written, event)
        if card is not None and card.client is not None:
            await self._read_extensions(run.db)
            earlier = self._prepared.get(self._key(event))
            popped = earlier.popped if earlier is not None else []
            summary = card.model_dump(mode="json")
            prepared = _Prepared(card.client.id, summary, call_data(call), popped)
            run.prepared[self._key(event)] = prepared
        return []

    async def _known_caller(self, db: Queryable, call: CallRow) -> CallerCard | None:
        """The pop's card of a caller who has one, found by the number in the same query
        as the card is made from; None for a new number (or a call that knows its card)."""
        e164 = self._e164(call.caller)
        if call.client_id is not None or e164 is None:
            return None
        card = await caller_card_by_phone(db, e164)
        if card is not None and card.client is not None:
            call.client_id = card.client.id
        return card

    def _numbers(
        self, call: CallRow, caller: str | None, callee: str | None, did: str | None = None
    ) -> None:
        """E.164 for every external number (the DID too); extensions stay as they are. A
        withheld caller is no number at all: the journal lists the call without a phone."""
        if call.direction == ev.Direction.INBOUND:
            call.caller = self._e164(caller) or call.caller
            call.callee = self._e164(callee) or call.callee or callee
        elif call.direction == ev.Direction.OUTBOUND:
            call.caller = call.caller or caller
            call.callee = self._e164(callee) or call.callee or callee
        else:
            call.caller, call.callee = call.caller or caller, call.callee or callee
        call.did = self._e164(did) or call.did

    async def _read_extensions(self, db: Queryable, *, fresh: bool = False) -> None:
        now = time.monotonic()
        if (
            not fresh
            and now - self._extensions_read < EXTENSIONS_TTL
            and self._extensions_writes == _UserWrites.count
        ):
            return
        self._extensions_writes = _UserWrites.count
        rows = await core_rows(db, _ACTIVE_EXTENSIONS, {})
        self._extensions = {ext: uid for ext, uid in rows if ext}
        self._extensions_read = now

    async def _summary(self, run: _Run, call: CallRow, key: CallKey) -> dict[str, Any]:
        prepared = run.prepared.get(key) or self._prepared.get(key)
        # Made for this card (a start retried after a rollback may have made another).
        if prepared is not None and call.client_id == prepared.client_id:
            return prepared.summary
        client, made = await self._client_for(run, call)
        card = NOBODY if client is None else await caller_card(run.session, client, made=made)
        return card.model_dump(mode="json")

    async def _ringing(self, run: _Run, call: CallRow, event: ev.CallRinging) -> Frames:
        if event.caller and call.direction == ev.Direction.INBOUND:
            # Normalized by the dialplan since CallStarted.
            call.caller = self._e164(event.caller) or call.caller
        if event.agent not in call.ringing:
            call.ringing = [*call.ringing, event.agent]
        elif not run.again:
            return []  # already popped for this agent
        # (Delivered again: its pop may have been lost with the worker that wrote the ring;
        # sent again, it is dropped where it did go out, by its tag.)
        if call.direction == ev.Direction.OUTBOUND:
            await self._client_for(run, call)
            return []  # the manager placed this call: nothing to pop
        prepared = self._prepared.get(self._key(event))
        if prepared is not None and event.agent in prepared.popped:
            return []  # popped ahead of this commit
        agent = await self._user_id_of(run.db, event.agent)
        card = await self._summary(run, call, self._key(event))
        return [notifier.ringing(call_data(call), event.agent, agent, card)]

    async def _answered(self, run: _Run, call: CallRow, event: ev.CallAnswered) -> Frames:
        agent_ext = event.agent
        told = bool(agent_ext) and agent_ext in call.agents
        if told and not run.again:
            return []  # (delivered again, it is sent again: see `_ringing`)
        if agent_ext and not told:
            call.agents = [*call.agents, agent_ext]
        first = call.answered_at is None
        if first:
            call.answered_at = event.at
            call.answered_by = agent_ext
        call.state = "answered"
        agent = await self._user_id_of(run.db, agent_ext)
        if agent is not None and call.user_id is None:
            call.user_id = agent
        users = [agent] if agent else ([call.user_id] if call.user_id else [])
        return [notifier.answered(call, agent_ext, users)]

    async def _participants(self, db: Queryable, call: CallRow) -> list[dict[str, Any]]:
        """Who talked, each by the user their extension belonged to now (a transfer's
        every agent), and the call's own user (who placed a click-to-call): their rows."""
        talk = call.talk_by_agent or {}
        rows: dict[int, dict[str, Any]] = {}
        for ext in call.agents:
            user_id = await self._user_id_of(db, ext)
            if user_id is not None and user_id not in rows:
                rows[user_id] = {"user_id": user_id, "extension": ext, "talk_s": talk.get(ext)}
        if call.user_id is not None and call.user_id not in rows:
            rows[call.user_id] = {"user_id": call.user_id, "extension": None, "talk_s": None}
        return list(rows.values())  # usually one (a transfer's: one per agent)

    async def _recording(self, run: _Run, call: CallRow, event: ev.RecordingStarted) -> None:
        name = recordings.relative_path(event.file)
        if name is None:
            return
        # Written at once (the end in the same run reads it back), once per call and file.
        await core_rows(
            run.db,
            _ADD_RECORDING.on(run.db),
            {"call": call.id, "path": event.file, "name": name, "at": utcnow()},
        )

    async def _ended(self, run: _Run, call: CallRow, event: ev.CallEnded) -> Frames:
        self._prepared.pop(self._key(event), None)
        run.prepared.pop(self._key(event), None)
        call.state = "ended"
        call.ended_at = event.at
        call.direction = str(event.direction)
        self._numbers(call, event.caller, event.callee)
        call.disposition = str(event.disposition)
        call.unanswered = str(event.unanswered) if event.unanswered else None
        call.queue = event.queue or call.queue
        if call.direction == ev.Direction.INBOUND:
            call.caller_name = call.caller_name or person_name(event.caller_name)
        call.cause = event.cause
        call.ring_s = event.ring_s
        call.talk_s = event.talk_s
        call.talk_by_agent = dict(event.talk_by_agent)
        for agent in event.agents:
            if agent not in call.agents:
                call.agents = [*call.agents, agent]
        call.answered_by = call.answered_by or event.answered_by
        call.failure = event.reason or call.failure
        unanswered = followup.needs_callback(call)
        # An answered call's card is named by its id only: loaded for the follow-up alone.
        client: Client | None = None
        client_id = None if unanswered else self._card_of(call)
        if run.folding and (client_id is None or event.disposition is not ev.Disposition.ANSWERED):
            raise _NeedsTransaction  # no card to write it on, or a callback to owe or not
        if client_id is None:
            client, _ = await self._client_for(run, call)
            client_id = client.id if client is not None else None
        rows = await core_rows(run.db, _RECORDINGS_OF, {"id": call.id})
        found = tuple((rec, name) for rec, name in rows)
        offered = self._offered(found) if event.talk_s > 0 else []
        answered_user = await self._user_id_of(run.db, call.answered_by)
        if answered_user is not None:
            call.user_id = answered_user
        talked = await self._participants(run.db, call)
        if not run.folding:
            for row in talked:
                await core_rows(run.db, _ADD_PARTICIPANT, {"call_id": call.id, **row})
        responsible = None
        if unanswered:
            responsible = await followup.responsible(
                run.session, call, client, pick=self._pick, tz=self._tz, now=event.at
            )
        if client_id is not None:
            answered = event.disposition is ev.Disposition.ANSWERED
            fact = communications.Fact(
                client_id=client_id,
                kind=CommKind.CALL,
                external_id=f"call:{call.pbx}:{call.pbx_call_id}",
                direction=CommDirection(call.direction),
                status=call.disposition,
                occurred_at=call.started_at,
                user_id=call.user_id or responsible,
                details={
                    "call_id": call.id,
                    "disposition": call.disposition,
                    "unanswered": call.unanswered,
                    "cause": call.cause,
                    "caller": call.caller,
                    "caller_name": call.caller_name,
                    "callee": call.callee,
                    "did": call.did,
                    "queue": call.queue,
                    "ring_s": call.ring_s,
                    "talk_s": call.talk_s,
                    "talk_by_agent": call.talk_by_agent,
                    "agents": list(call.agents),
                    "answered_by": call.answered_by,
                    "recording_id": offered[0] if offered else None,
                    "ended_by": event.reason,
                },
            )
            if run.folding:
                run.ending = _Ending(fact, talked, event.at)
                return await self._end_frames(run.db, call, client_id, responsible)
            asking = followup.HAS_OPEN_CALLBACK if answered else None
            written = await communications.record_new(run.db, fact, asking)
            if written is None:  # a replay of the fact: updated through the ORM
                replayed = await communications.record(run.session, fact)
                call.communication_id = replayed.communication.id
            else:
                call.communication_id = written["id"]
            if written is not None and answered:
                if written[followup.HAS_OPEN_CALLBACK.name]:
                    # A callback (or the client's own call) got through: nobody owes one now.
                    await followup.close_callbacks(run.db, client_id, event.at)
            elif (
                written is not None
                and client is not None
                and unanswered
                and responsible is not None
                and not await followup.reached_since(run.session, client_id, call)
            ):
                task = await followup.open_callback(
                    run.session, call=call, client=client, assignee_id=responsible, at=event.at
                )
                call.callback_task_id = task.id
        return await self._end_frames(run.db, call, client_id, responsible)

    async def _ended_again(self, session: AsyncSession, call: CallRow) -> Frames:
        """The frames of an end already written, as they went out (or should have): their
        tags make readers drop a second copy. Who was responsible is who owes the
        callback now."""
        responsible = None
        if call.callback_task_id is not None:
            responsible = await followup.callback_assignee(session, call.callback_task_id)
        return await self._end_frames(session, call, self._card_of(call), responsible)

    async def _end_frames(
        self, db: Queryable, call: CallRow, client_id: int | None, responsible: int | None
    ) -> Frames:
        # Everyone whose phone rang sees the call end, not only who owns the follow-up.
        rung = [await self._user_id_of(db, ext) for ext in call.ringing]
        users = sorted({u for u in (call.user_id, responsible, *rung) if u is not None})
        frames = [notifier.ended(call, client_id, users)]
        if call.callback_task_id is not None and client_id is not None and responsible:
            frames.append(notifier.missed(call, client_id, responsible))
        return frames

    def _offered(self, found: Recorded) -> list[int]:
        """The ids of the recordings worth offering."""
        # Not visible from here (yet): offered, served when it appears. The names were
        # made relative to the root when written (`recordings.relative_path`).
        return [
            rec for rec, name in found if recording_state(self._recordings_dir, name) != "empty"
        ]
