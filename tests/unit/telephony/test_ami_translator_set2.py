"""The second set of real Asterisk 22 captures (Callcard's own sample dialplan) through the
translator: each call ends the way README-set2.md says a contact centre counts it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from support.captures import MONITOR, capture_events, translate

from telephony import events as ev

D, U = ev.Disposition, ev.Unanswered
DID = "74951234567"


def ended(
    *,
    caller: str,
    disposition: ev.Disposition,
    unanswered: ev.Unanswered | None,
    cause: int,
    ringing: list[str],
    ring_s: float,
    talk_s: float = 0,
    talk_by_agent: dict[str, float] | None = None,
    queue: str | None = None,
    caller_name: str | None = None,
    recording: bool = True,
) -> dict[str, Any]:
    return dict(locals())


# Call id (Linkedid) -> what README-set2.md says about the call.
EXPECTED: dict[str, dict[str, dict[str, Any]]] = {
    "incoming-cancel-while-ringing": {
        "1796184942.3": ended(
            caller="+79265550101",
            disposition=D.ABANDONED,  # the caller's CANCEL while 101 rang: not "failed"
            unanswered=U.ABANDONED_RINGING,
            cause=127,
            ringing=["101"],
            ring_s=6,
        ),
    },
    "queue-timeout-unrung": {
        "1796184964.5": ended(
            caller="+79265550121",
            disposition=D.ANSWERED,
            unanswered=None,
            cause=16,
            ringing=["101"],
            ring_s=2,
            talk_s=75,
            talk_by_agent={"101": 75},
        ),
        "1796184966.7": ended(
            caller="+79265550122",
            disposition=D.ANSWERED,
            unanswered=None,
            cause=16,
            ringing=["102"],
            ring_s=2,
            talk_s=75,
            talk_by_agent={"102": 75},
        ),
        # No phone rang, no Cdr: the queue's own timeout (HoldTime 60) is the wait.
        "1796184971.9": ended(
            caller="+79265550102",
            disposition=D.MISSED,
            unanswered=U.QUEUE_TIMEOUT,
            cause=16,
            ringing=[],
            ring_s=60,
            queue="sales",
        ),
        "1796184972.10": ended(
            caller="+79265550103",
            disposition=D.MISSED,
            unanswered=U.QUEUE_TIMEOUT,
            cause=16,
            ringing=[],
            ring_s=60,
            queue="sales",
        ),
    },
    "queue-abandon-after-ringing": {
        # Two ring rounds, six Cdrs: one call, the caller waited 29 s, not the last 7.
        "1796185096.11": ended(
            caller="+79265550104",
            disposition=D.ABANDONED,
            unanswered=U.ABANDONED_QUEUE,
            cause=127,
            ringing=["101", "102", "103"],
            ring_s=29,
            queue="sales",
        ),
    },
    "repeat-caller": {
        **{
            call_id: ended(
                caller="+79265550105",
                disposition=D.ABANDONED,
                unanswered=U.ABANDONED_RINGING,
                cause=127,
                ringing=["101"],
                ring_s=23,  # both ring attempts (20 s, then 3 s), not the longest one
            )
            for call_id in ("1796185131.18", "1796185161.21", "1796185191.24")
        },
        "1796185222.27": ended(
            caller="+79265550105",
            disposition=D.ANSWERED,
            unanswered=None,
            cause=16,
            ringing=["101"],
            ring_s=3,
            talk_s=5,
            talk_by_agent={"101": 5},
        ),
    },
    "recording-dated-folder": {
        "1796185295.2": ended(
            caller="+79265550106",
            disposition=D.ANSWERED,
            unanswered=None,
            cause=16,
            ringing=["101"],
            ring_s=2,
            talk_s=5,
            talk_by_agent={"101": 5},
        ),
    },
    "pbx-restart-mid-call.A": {
        "1796185264.33": ended(
            caller="+79265550107",
            disposition=D.ANSWERED,
            unanswered=None,
            cause=16,
            ringing=["101"],
            ring_s=2,
            talk_s=5,
            talk_by_agent={"101": 5},
        ),
    },
    "pbx-restart-mid-call.B": {
        "1796185275.0": ended(
            caller="+79265550108",
            disposition=D.ANSWERED,
            unanswered=None,
            cause=16,
            ringing=["101"],
            ring_s=2,
            talk_s=5,
            talk_by_agent={"101": 5},
        ),
    },
    "caller-name-latin-and-cyrillic": {
        "1796185241.29": ended(
            caller="+79265550109",
            caller_name="Anna Smirnova",
            disposition=D.ANSWERED,
            unanswered=None,
            cause=16,
            ringing=["101"],
            ring_s=2,
            talk_s=4,
            talk_by_agent={"101": 4},
        ),
        "1796185250.31": ended(
            caller="+79265550110",
            caller_name="ООО Ромашка",
            disposition=D.ANSWERED,
            unanswered=None,
            cause=16,
            ringing=["101"],
            ring_s=2,
            talk_s=4,
            talk_by_agent={"101": 4},
        ),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_set2_capture_gives_the_calls_its_readme_describes(name: str) -> None:
    out = translate(capture_events(name))
    assert {e.call_id for e in out} == set(EXPECTED[name])
    for call_id, want in EXPECTED[name].items():
        mine = [e for e in out if e.call_id == call_id]
        started, end = mine[0], mine[-1]
        assert isinstance(started, ev.CallStarted) and isinstance(end, ev.CallEnded)
        assert [type(e) for e in mine].count(ev.CallEnded) == 1
        assert started.direction is ev.Direction.INBOUND and end.direction is started.direction
        assert (started.caller, started.did) == (want["caller"], DID)
        assert started.caller_name == end.caller_name == want["caller_name"]
        assert started.at == datetime.fromtimestamp(int(call_id.split(".")[0]), UTC)
        # A phone rung again (a queue's second round, a dial retry) rings once more.
        rung = [e.agent for e in mine if isinstance(e, ev.CallRinging)]
        assert list(dict.fromkeys(rung)) == want["ringing"]
        assert (end.disposition, end.unanswered, end.cause) == (
            want["disposition"],
            want["unanswered"],
            want["cause"],
        )
        assert end.queue == want["queue"]
        assert end.ring_s == pytest.approx(want["ring_s"], abs=1.0)
        assert end.talk_s == pytest.approx(want["talk_s"], abs=1.0)
        assert end.talk_by_agent == (want["talk_by_agent"] or {})
        recordings = [e.file for e in mine if isinstance(e, ev.RecordingStarted)]
        assert len(recordings) == 1 and recordings[0].endswith(f"{call_id}.wav")


def test_dated_recording_folder_is_kept_in_the_file_path() -> None:
    out = translate(capture_events("recording-dated-folder"))
    files = [e.file for e in out if isinstance(e, ev.RecordingStarted)]
    assert files == [MONITOR + "2026/12/02/1796185295.2.wav"]


def test_every_event_of_a_call_is_on_the_pbx_clock() -> None:
    """One clock: started, answered and ended times all count from the call's start."""
    out = translate(capture_events("repeat-caller"))
    for call_id in EXPECTED["repeat-caller"]:
        start = datetime.fromtimestamp(int(call_id.split(".")[0]), UTC)
        assert all(e.at == start for e in out if e.call_id == call_id)  # all fed at once


def test_transfer_keeps_the_talk_of_each_agent() -> None:
    """The redirect capture (set 1): 101 talked 3 s, then the caller was sent to 103 (11 s)."""
    (end,) = [e for e in translate(capture_events("redirect")) if isinstance(e, ev.CallEnded)]
    assert end.talk_by_agent == {"101": 3, "103": 11}
    assert end.talk_s == 14


def test_click_to_call_says_when_the_client_is_being_dialled() -> None:
    """The manager's phone answered the Originate; the dialplan now dials the client."""
    out = translate(capture_events("click-to-call"))
    kinds = [type(e).__name__ for e in out]
    dialling = [e for e in out if isinstance(e, ev.CallDialling)]
    assert len(dialling) == 1
    assert (dialling[0].agent, dialling[0].number, dialling[0].crm_call_id) == (
        "102",
        "79161234567",
        "crm-5001",
    )
    # After the manager's ring, before the client answers.
    assert kinds.index("CallRinging") < kinds.index("CallDialling") < kinds.index("CallAnswered")
