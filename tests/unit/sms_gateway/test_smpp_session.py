"""The pure SMPP session: window, rate, throttling, deadlines, watchdog and dispatch,
driven by typed PDUs and a made-up clock (no socket, no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from sms_gateway.config import SmppConfig
from sms_gateway.encoding import make_parts
from sms_gateway.session import (
    Action,
    Close,
    Deliver,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    OtherPdu,
    Query,
    QueryDone,
    QuerySm,
    QuerySmResp,
    Received,
    Session,
    Submit,
    SubmitDone,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from sms_gateway.status import (
    ESME_RINVCMDID,
    ESME_RINVDSTADR,
    ESME_ROK,
    ESME_RTHROTTLED,
    LINK_LOST,
    NOT_SENT,
)

PART = make_parts("hello", 1)[0]


def config(**more: Any) -> SmppConfig:
    return SmppConfig(host="smsc", port=2775, system_id="u", password="p", **more)


def part(n: int, deadline: float | None = None) -> Submit:
    return Submit(f"7926{n:07d}", PART, "Callcard", lambda *_: None, deadline=deadline)


def sent(actions: list[Action]) -> list[SubmitSm]:
    return [a for a in actions if isinstance(a, SubmitSm)]


def done(actions: list[Action]) -> list[tuple[str, int, str | None]]:
    return [
        (a.submit.destination, a.status, a.message_id) for a in actions if isinstance(a, SubmitDone)
    ]


def test_no_more_than_the_window_is_unanswered_and_answers_free_the_slots() -> None:
    s = Session(config(window=3), now=0.0)
    for n in range(5):
        s.submit(part(n))
    first = sent(s.tick(0.0))
    assert len(first) == 3 and s.in_flight == 3 and s.queued == 2
    assert sent(s.tick(0.1)) == []  # the window is full
    out = s.feed(SubmitSmResp(first[1].sequence, ESME_ROK, "id-1"), 0.2)
    assert done(out) == [(first[1].submit.destination, ESME_ROK, "id-1")]
    assert [x.submit.destination for x in sent(s.tick(0.2))] == ["79260000003"]


def test_answers_are_matched_by_sequence_and_a_refusal_carries_no_id() -> None:
    s = Session(config(), now=0.0)
    s.submit(part(1))
    s.submit(part(2))
    a, b = sent(s.tick(0.0))
    assert a.sequence != b.sequence
    assert done(s.feed(SubmitSmResp(b.sequence, ESME_RINVDSTADR, "junk"), 0.1)) == [
        ("79260000002", ESME_RINVDSTADR, None)
    ]
    assert done(s.feed(GenericNack(a.sequence, 0x45), 0.1)) == [("79260000001", 0x45, None)]
    assert s.feed(SubmitSmResp(999, ESME_ROK, "x"), 0.1) == []  # nothing of ours


def test_a_throttle_halves_the_rate_sent_and_pauses_once_for_the_whole_window() -> None:
    s = Session(config(window=10, throttle_pause=1.0, rate_step=2.0), now=0.0)
    for n in range(10):
        s.submit(part(n))
    burst = sent(s.tick(0.0))
    assert len(burst) == 10 and s.rate is None
    # The SMSC took the first two and throttled the rest.
    s.feed(SubmitSmResp(burst[0].sequence, ESME_ROK, "a"), 0.01)
    s.feed(SubmitSmResp(burst[1].sequence, ESME_ROK, "b"), 0.01)
    for pdu in burst[2:]:
        assert s.feed(SubmitSmResp(pdu.sequence, ESME_RTHROTTLED, None), 0.02) == []
    assert s.rate == 5.0  # 10 sent in the last second, halved once, not eight times
    assert s.throttled == 8 and s.queued == 8
    assert sent(s.tick(0.5)) == []  # paused for a second
    again = sent(s.tick(1.02))
    # The throttled parts go again first, in their order, one per 1/5 s slot.
    assert [p.submit.destination for p in again] == ["79260000002"]
    assert sent(s.tick(1.1)) == []
    assert [p.submit.destination for p in sent(s.tick(1.23))] == ["79260000003"]


def test_the_rate_grows_back_by_the_step_per_second_and_a_new_throttle_cuts_again() -> None:
    s = Session(config(window=50, rate_step=2.0), now=0.0)
    for n in range(4):
        s.submit(part(n))
    first = sent(s.tick(0.0))
    s.feed(SubmitSmResp(first[0].sequence, ESME_RTHROTTLED, None), 0.0)
    assert s.rate == 2.0  # 4 sent, halved
    for pdu in first[1:]:
        s.feed(SubmitSmResp(pdu.sequence, ESME_ROK, "x"), 0.0)
    # Each success adds step/rate: `rate` successes a second add `step` a second.
    assert s.rate == pytest.approx(2.0 + 2 / 2 + 2 / 3 + 2 / (3 + 2 / 3))
    again = sent(s.tick(1.0))
    s.feed(SubmitSmResp(again[0].sequence, ESME_RTHROTTLED, None), 1.1)
    assert s.rate == 0.5  # one sent in the last second: halved, but not below min_rate


def test_a_configured_rate_spaces_the_submits_and_caps_the_growth() -> None:
    s = Session(config(max_rate=10.0), now=0.0)
    for n in range(3):
        s.submit(part(n))
    assert len(sent(s.tick(0.0))) == 1
    assert sent(s.tick(0.05)) == []
    assert len(sent(s.tick(0.1))) == 1
    assert s.wakeup(0.1) == pytest.approx(0.1)


def test_a_part_unwritten_at_its_deadline_goes_back_not_sent() -> None:
    s = Session(config(window=1), now=0.0)
    s.submit(part(1, deadline=5.0))
    s.submit(part(2, deadline=5.0))
    s.submit(part(3))
    (first,) = sent(s.tick(0.0))
    out = s.tick(6.0)  # the first is written (its answer decides), the second waited
    assert done(out) == [("79260000002", NOT_SENT, None)]
    assert s.queued == 1
    assert done(s.feed(SubmitSmResp(first.sequence, ESME_ROK, "m1"), 6.1)) == [
        ("79260000001", ESME_ROK, "m1")
    ]


def test_silence_brings_an_enquire_link_and_no_answer_closes_the_link() -> None:
    s = Session(config(enquire_link_every=30.0, dead_link_after=10.0), now=0.0)
    assert s.tick(29.0) == []
    assert s.wakeup(29.0) == pytest.approx(0.5)
    (probe,) = s.tick(30.5)
    assert isinstance(probe, EnquireLink)
    assert s.tick(35.0) == []  # asked once
    s.feed(EnquireLinkResp(probe.sequence), 36.0)
    assert s.tick(40.0) == []  # answered: quiet until the next silence
    (probe,) = s.tick(66.5)
    assert s.tick(76.0) == []
    assert s.tick(76.6) == [Close("enquire_link not answered")]


def test_a_request_left_unanswered_closes_the_link() -> None:
    s = Session(config(response_timeout=30.0, enquire_link_every=1000.0), now=0.0)
    s.submit(part(1))
    sent(s.tick(0.0))
    s.feed(Deliver("7", "C", 0, 0, b"x", {}, 5, 0), 10.0)  # the SMSC talks, but not of it
    assert s.tick(29.0) == []
    assert s.tick(31.0) == [Close("a request unanswered for 30s")]


def test_the_smsc_requests_are_answered_and_delivers_handed_up() -> None:
    s = Session(config(), now=0.0, generation=3)
    assert s.feed(EnquireLink(7), 1.0) == [EnquireLinkResp(7)]
    assert s.feed(Unbind(8), 1.0) == [UnbindResp(8), Close("the SMSC unbound")]
    assert s.feed(OtherPdu(9, 0x00000103), 1.0) == [GenericNack(9, ESME_RINVCMDID)]
    assert s.feed(OtherPdu(9, 0x80000103), 1.0) == []  # a response to nothing: ignored
    deliver = Deliver("79161234567", "Callcard", 0, 0, b"Da", {}, 11, 3)
    assert s.feed(deliver, 1.0) == [Received(deliver)]
    assert s.answer(11, ESME_ROK)[0].sequence == 11  # type: ignore[union-attr]
    assert isinstance(s.stop()[0], Unbind)


def test_a_query_goes_out_at_once_and_its_answer_comes_back() -> None:
    s = Session(config(window=1), now=0.0)
    answers: list[tuple[int, int | None]] = []
    s.submit(part(1))
    s.submit(part(2))
    s.query(Query("abc", "Callcard", lambda code, state: answers.append((code, state))))
    out = s.tick(0.0)
    (query,) = [a for a in out if isinstance(a, QuerySm)]
    assert len(sent(out)) == 1  # a query is not a submit: the window does not hold it
    (result,) = s.feed(QuerySmResp(query.sequence, ESME_ROK, 2), 0.1)
    assert isinstance(result, QueryDone) and result.message_state == 2


def test_closing_gives_back_what_was_written_as_lost_and_the_rest_as_not_sent() -> None:
    s = Session(config(window=1), now=0.0)
    s.submit(part(1))
    s.submit(part(2))
    s.tick(0.0)
    s.query(Query("abc", "Callcard", lambda *_: None))
    out = s.close()
    assert done(out) == [("79260000001", LINK_LOST, None), ("79260000002", NOT_SENT, None)]
    assert [a.status for a in out if isinstance(a, QueryDone)] == [NOT_SENT]
    assert s.in_flight == 0 and s.queued == 0 and s.close() == []
