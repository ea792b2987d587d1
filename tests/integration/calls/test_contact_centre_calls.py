"""Calls counted the way a contact centre counts them, from real Asterisk 22 traffic: the
AMI simulator replays the captures (set 2: Callcard's own dialplan) over TCP into the real
adapter, and the journal, the missed-calls list and the callback tasks tell the story a
supervisor can trust: every unanswered caller reaches a person, with one callback task."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import PurePosixPath
from typing import Any

import pytest
from sqlalchemy import select
from support.call_burst import anonymous_call, burst
from support.call_events import pbx_handled
from support.factories import Actor, on_shift_all_week
from support.server import RunningApi
from support.waiting import wait_for
from support.ws import Socket, open_socket

from crm_api.accounts.models import Role
from crm_api.tasks.models import Task
from telephony.ami.simulator import CAPTURES, AmiSimulator, Timing, prepare


@pytest.fixture
async def on_duty(db, team: dict[str, Actor]) -> dict[int, str]:
    """The three managers on shift: the routing policy picks among them. user id -> ext."""
    async with db() as session:
        await on_shift_all_week(session, *(a.user for a in team.values()))
        await session.commit()
    return {a.user.id: ext for ext, a in team.items()}


async def journal(api: RunningApi, token: str, n: int, **params: Any) -> list[dict]:
    """The calls journal, once `n` calls are in it and everything the PBX sent so far was
    handled (so a call counted twice would be among them)."""
    async with asyncio.timeout(30), api.client(token) as http:
        while True:
            page = (await http.get("/calls", params={"page_size": 200, **params})).json()
            if page["total"] >= n:
                await wait_for(lambda: pbx_handled(api.app.state.services))
                return (await http.get("/calls", params={"page_size": 200, **params})).json()[
                    "items"
                ]
            await asyncio.sleep(0.1)


async def missed_list(api: RunningApi, token: str, **params: Any) -> list[dict]:
    async with api.client(token) as http:
        r = await http.get("/calls/missed", params={"page_size": 200, **params})
        assert r.status_code == 200, r.text
        return r.json()["items"]


async def callback_tasks(db, client_id: int) -> list[Task]:
    async with db() as session:
        return list((await session.scalars(select(Task).where(Task.client_id == client_id))).all())


async def test_caller_who_cancels_while_ringing_is_abandoned_not_failed(
    telephony_api: RunningApi, pbx: AmiSimulator, actors, on_duty, db
) -> None:
    api, supervisor = telephony_api, actors[Role.SUPERVISOR]
    await pbx.play("incoming-cancel-while-ringing")
    [call] = await journal(api, supervisor.token, 1)
    assert (call["disposition"], call["unanswered"], call["failure"]) == (
        "abandoned",
        "abandoned_ringing",
        None,
    )
    assert (call["caller"], call["did"]) == ("+79265550101", "+74951234567")  # E.164, DID too
    assert call["ringing"] == ["101"] and call["ring_s"] == pytest.approx(6, abs=1)
    [task] = await callback_tasks(db, call["client_id"])
    assert task.assignee_id in on_duty and task.done_at is None
    assert call["callback_task_id"] == task.id


async def test_queue_callers_nobody_rang_are_missed_by_queue_timeout_and_called_back(
    telephony_api: RunningApi, pbx: AmiSimulator, actors, on_duty, db
) -> None:
    api, supervisor, operator = telephony_api, actors[Role.SUPERVISOR], actors[Role.OPERATOR]
    await pbx.play("queue-timeout-unrung")
    calls = await journal(api, supervisor.token, 4)
    by_caller = {c["caller"]: c for c in calls}
    for caller in ("+79265550102", "+79265550103"):
        call = by_caller[caller]
        assert (call["disposition"], call["unanswered"], call["queue"]) == (
            "missed",
            "queue_timeout",
            "sales",
        )
        assert call["ringing"] == [] and call["ring_s"] == pytest.approx(60)  # the wait
        [task] = await callback_tasks(db, call["client_id"])
        assert task.assignee_id in on_duty and task.kind == "missed_call"
        assert task.params["number"] == caller and task.params["count"] == 1
    for caller, agent in (("+79265550121", "101"), ("+79265550122", "102")):
        call = by_caller[caller]
        assert call["disposition"] == "answered" and call["talk_by_agent"] == {agent: 75}
    # The team-wide list an operator sees: both queue callers, each with who calls back.
    missed = await missed_list(api, operator.token)
    assert {m["call"]["caller"] for m in missed} == {"+79265550102", "+79265550103"}
    assert all(m["callback"]["assignee_id"] in on_duty for m in missed)


async def test_repeat_caller_has_one_callback_task_closed_when_a_call_gets_through(
    telephony_api: RunningApi, pbx: AmiSimulator, actors, on_duty, db
) -> None:
    api, supervisor = telephony_api, actors[Role.SUPERVISOR]
    # Each phone rings, and the last call talks, a moment: the calls end in their order.
    await pbx.play("repeat-caller", timing=Timing(ring=(0.5, 0.5), talk=(0.5, 0.5)))
    calls = await journal(api, supervisor.token, 4)
    assert [c["disposition"] for c in reversed(calls)] == ["abandoned"] * 3 + ["answered"]
    assert all(c["ring_s"] == pytest.approx(23, abs=1) for c in calls[1:])  # both attempts
    [task] = await callback_tasks(db, calls[0]["client_id"])
    assert task.params["count"] == 3
    assert {c["callback_task_id"] for c in calls[1:]} == {task.id}
    assert task.done_at is not None  # the fourth call got through: nobody owes a callback
    assert await missed_list(api, supervisor.token) == []
    assert len(await missed_list(api, supervisor.token, open_only=False)) == 3


async def test_callers_names_name_new_cards_and_show_in_the_pop(
    telephony_api: RunningApi, pbx: AmiSimulator, actors
) -> None:
    api, manager, supervisor = telephony_api, actors[Role.MANAGER], actors[Role.SUPERVISOR]
    async with open_socket(api.ws_url, manager.token) as conn:  # extension 101
        sock = Socket(conn)
        await sock.next_of("hello")
        await pbx.play("caller-name-latin-and-cyrillic")
        pops = [await sock.next_of("call.ringing") for _ in range(2)]
    named = {(p["data"]["client"]["name"], p["data"]["caller_name"]) for p in pops}
    assert named == {("Anna Smirnova", "Anna Smirnova"), ("ООО Ромашка", "ООО Ромашка")}
    calls = await journal(api, supervisor.token, 2)
    assert {c["caller_name"] for c in calls} == {"Anna Smirnova", "ООО Ромашка"}


async def test_recording_in_a_dated_folder_is_served(
    telephony_api: RunningApi, pbx: AmiSimulator, actors, settings
) -> None:
    api, supervisor = telephony_api, actors[Role.SUPERVISOR]
    events = prepare("recording-dated-folder")
    pbx_path = next(
        dict(p)["Value"] for p in events if dict(p).get("Variable") == "MIXMONITOR_FILENAME"
    )
    dated = PurePosixPath(*PurePosixPath(pbx_path).parts[-4:])  # 2026/12/02/<uniqueid>.wav
    target = settings.recordings_dir / dated
    target.parent.mkdir(parents=True)
    shutil.copy(CAPTURES / "recording-dated-folder.wav", target)
    await pbx.emit(events)
    [call] = await journal(api, supervisor.token, 1)
    assert call["recording_id"] is not None
    async with api.client(supervisor.token) as http:
        r = await http.get(f"/recordings/{call['recording_id']}")
    assert r.status_code == 200
    assert r.content == (CAPTURES / "recording-dated-folder.wav").read_bytes()


async def test_anonymous_caller_is_in_the_journal_without_a_card_or_a_phone(
    telephony_api: RunningApi, pbx: AmiSimulator, actors, db
) -> None:
    api, supervisor = telephony_api, actors[Role.SUPERVISOR]
    await pbx.emit(anonymous_call())
    [call] = await journal(api, supervisor.token, 1)
    assert (call["caller"], call["client_id"], call["caller_name"]) == (None, None, None)
    assert call["disposition"] == "missed" and call["direction"] == "inbound"
    async with db() as session:
        assert (await session.scalars(select(Task))).all() == []  # no number to call back


async def test_transfer_keeps_each_agents_talk(
    telephony_api: RunningApi, pbx: AmiSimulator, actors, team
) -> None:
    api, supervisor = telephony_api, actors[Role.SUPERVISOR]
    await pbx.play("redirect")
    [call] = await journal(api, supervisor.token, 1)
    assert call["agents"] == ["101", "103"]
    assert call["talk_by_agent"] == {"101": 3, "103": 11}


async def test_thirty_calls_at_ten_a_second_every_unanswered_caller_one_callback(
    telephony_api: RunningApi, pbx: AmiSimulator, actors, on_duty, db
) -> None:
    """The mixed burst: answered, busy, no answer and queue timeouts, 10 calls a second."""
    api, supervisor = telephony_api, actors[Role.SUPERVISOR]
    calls = burst(30)
    sending = []
    for _, _, events in calls:
        sending.append(asyncio.create_task(pbx.emit(events, pace=0.002)))
        await asyncio.sleep(0.1)  # ten calls a second: the rate is the test
    await asyncio.gather(*sending)
    rows = await journal(api, supervisor.token, 30)
    assert len(rows) == 30
    by_caller = {r["caller"]: r for r in rows}
    assert set(by_caller) == {caller for _, caller, _ in calls}
    expected = {
        "incoming-answered": ("answered", None),
        "incoming-busy": ("busy", "busy"),
        "incoming-missed": ("missed", "no_answer"),
        "queue-timeout-unrung": ("missed", "queue_timeout"),
    }
    for capture, caller, _ in calls:
        row = by_caller[caller]
        assert (row["disposition"], row["unanswered"]) == expected[capture], caller
        tasks = await callback_tasks(db, row["client_id"])
        if row["disposition"] == "answered":
            assert tasks == []
        else:  # exactly one open callback task, assigned to a real person on duty
            [task] = tasks
            assert task.done_at is None and task.assignee_id in on_duty
            assert task.params == {
                **task.params,
                "number": caller,
                "count": 1,
                "unanswered": row["unanswered"],
            }
    missed = await missed_list(api, supervisor.token)
    assert len(missed) == 30 - 8  # 8 of the 30 answered
    print_journal(rows, missed, on_duty)


def print_journal(rows: list[dict], missed: list[dict], on_duty: dict[int, str]) -> None:
    """The journal as a supervisor reads it (shown with -s)."""
    callbacks = {m["call"]["id"]: on_duty[m["callback"]["assignee_id"]] for m in missed}
    counts: dict[str, int] = {}
    for row in sorted(rows, key=lambda r: r["caller"]):
        counts[row["disposition"]] = counts.get(row["disposition"], 0) + 1
        print(
            f"{row['caller']} {row['disposition']:<9} {row['unanswered'] or '':<14}"
            f" wait {row['ring_s']:>4.0f}s talk {row['talk_s']:>3.0f}s"
            f" {' '.join(row['agents']) or '-':<4} callback: {callbacks.get(row['id'], '-')}"
        )
    print(counts)
