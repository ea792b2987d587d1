"""The routing policy: which extension rings for an incoming call.

The client's responsible manager when on duty and free; otherwise the on-duty managers
in schedule order, taken round robin; nobody left → the configured fallback. This is the
pure decision; routing_state.py keeps the rotation and the offers (Redis or the database)
and answers the PBX with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Agent:
    user_id: int
    extension: str
    busy: bool


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """`extension` to dial, or `queue` when nobody is available; `reason` says why:
    owner | round_robin | fallback."""

    extension: str | None
    queue: str | None
    user_id: int | None
    reason: str

    @property
    def target(self) -> str:
        """What the dialplan gets in CALLCARD_ROUTE: an extension or `queue:<name>`."""
        return self.extension if self.extension is not None else f"queue:{self.queue}"


def fallback_decision(fallback: str) -> RouteDecision:
    """`queue:<name>` or a bare extension, as configured."""
    if fallback.startswith("queue:"):
        return RouteDecision(None, fallback.removeprefix("queue:"), None, "fallback")
    return RouteDecision(fallback.removeprefix("ext:"), None, None, "fallback")


def free_candidates(on_duty: Sequence[Agent], tried: frozenset[int]) -> list[Agent]:
    return [a for a in on_duty if not a.busy and a.user_id not in tried]


def decide(
    on_duty: Sequence[Agent],
    *,
    owner_id: int | None,
    tried: frozenset[int],
    turn: int | None,
    fallback: str,
) -> RouteDecision | None:
    """The pure decision. `on_duty` is in schedule order; `turn` is the shared round-robin
    counter, drawn only when needed: None answers "round robin needed" with None."""
    candidates = free_candidates(on_duty, tried)
    for agent in candidates:
        if agent.user_id == owner_id:
            return RouteDecision(agent.extension, None, agent.user_id, "owner")
    if not candidates:
        return fallback_decision(fallback)
    if turn is None:
        return None
    agent = candidates[turn % len(candidates)]
    return RouteDecision(agent.extension, None, agent.user_id, "round_robin")
