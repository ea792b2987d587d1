"""The call a piece of work is about, for its log lines.

Set where a call's work begins (an AMI event's delivery, a FastAGI request, a run of the
call's events in an API worker); every log line written underneath, in any module,
carries the id (crm_api.platform.logs adds it to each record)."""

from __future__ import annotations

from contextvars import ContextVar, Token

current_call: ContextVar[str | None] = ContextVar("callcard_call_id", default=None)


class about_call:
    """`with about_call(call_id):` (lower case: it reads as the function it was). A class
    rather than a @contextmanager: entered once per call event, and a generator-based
    context manager costs several times as much."""

    __slots__ = ("_call_id", "_token")

    def __init__(self, call_id: str | None) -> None:
        self._call_id = call_id
        self._token: Token[str | None] | None = None

    def __enter__(self) -> None:
        self._token = current_call.set(self._call_id)

    def __exit__(self, *_exc: object) -> None:
        assert self._token is not None
        current_call.reset(self._token)
