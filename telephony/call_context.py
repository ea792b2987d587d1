"""The call a piece of work is about, for its log lines.

Set where a call's work begins (an AMI event's delivery, a FastAGI request, a run of the
call's events in an API worker); every log line written underneath, in any module,
carries the id (crm_api.platform.logs adds it to each record)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

current_call: ContextVar[str | None] = ContextVar("callcard_call_id", default=None)


@contextlib.contextmanager
def about_call(call_id: str | None) -> Iterator[None]:
    token = current_call.set(call_id)
    try:
        yield
    finally:
        current_call.reset(token)
