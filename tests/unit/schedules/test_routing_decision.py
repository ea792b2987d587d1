"""The pure routing decision: owners, busy flags, round robin, repeated asks, fallback."""

from __future__ import annotations

import pytest

from crm_api.schedules.routing import Agent, RouteDecision, decide

A = Agent(1, "101", busy=False)
B = Agent(2, "102", busy=False)
C = Agent(3, "103", busy=False)
B_BUSY = Agent(2, "102", busy=True)


def _pick(
    agents: list[Agent], owner: int | None, tried: set[int] = frozenset(), turn: int = 0
) -> RouteDecision:
    first = decide(agents, owner_id=owner, tried=frozenset(tried), turn=None, fallback="queue:q")
    if first is not None:
        return first
    got = decide(agents, owner_id=owner, tried=frozenset(tried), turn=turn, fallback="queue:q")
    assert got is not None
    return got


@pytest.mark.parametrize(
    ("agents", "owner", "tried", "turn", "target", "reason"),
    [
        ([A, B, C], 2, set(), 0, "102", "owner"),  # owner on duty and free
        ([A, B_BUSY, C], 2, set(), 0, "101", "round_robin"),  # owner busy
        ([A, B_BUSY, C], 2, set(), 1, "103", "round_robin"),
        ([A, C], 2, set(), 1, "103", "round_robin"),  # owner off duty
        ([A, B, C], 2, {2}, 0, "101", "round_robin"),  # owner already rang: the next one
        ([A, B, C], None, {1, 2, 3}, 0, "queue:q", "fallback"),  # everyone tried
        ([], 2, set(), 0, "queue:q", "fallback"),  # nobody on duty
        ([B_BUSY], 2, set(), 0, "queue:q", "fallback"),  # the only one is busy
    ],
)
def test_decision_table(agents, owner, tried, turn, target, reason) -> None:
    got = _pick(agents, owner, tried, turn)
    assert (got.target, got.reason) == (target, reason)


def test_round_robin_is_fair_over_turns() -> None:
    counts = {1: 0, 2: 0, 3: 0}
    for turn in range(300):
        got = _pick([A, B, C], None, turn=turn)
        assert got.user_id is not None
        counts[got.user_id] += 1
    assert counts == {1: 100, 2: 100, 3: 100}


def test_owner_does_not_draw_a_turn() -> None:
    assert decide([A, B], owner_id=1, tried=frozenset(), turn=None, fallback="9") is not None
    assert decide([A, B], owner_id=None, tried=frozenset(), turn=None, fallback="9") is None


def test_extension_fallback() -> None:
    got = decide([], owner_id=None, tried=frozenset(), turn=None, fallback="100")
    assert got == RouteDecision("100", None, None, "fallback")
