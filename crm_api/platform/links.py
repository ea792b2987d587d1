"""What the features running in this process lend the routes and each other, typed.

Built once with the Services by the runtime; each slot is filled by the one feature that
owns it when that feature starts. None: the feature does not run in this process
(`callcard api` workers have no PBX link and no SMPP bind)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from crm_api.platform.errors import Unavailable
from crm_api.platform.realtime.streams import EventStream, InProcessStream
from telephony.pbx import Pbx


class Outbox(Protocol):
    """A worker sending an outbox; setting `wake` makes it look now, not at its next poll."""

    wake: asyncio.Event


@dataclass
class Links:
    pbx: Pbx | None = None  # calls.telephony, calls.sip: this process's PBX link
    # calls.commands (`callcard api`): the PBX of that name (CALLCARD_PBX_NAME), through Redis.
    pbx_named: Callable[[str], Pbx] | None = None
    email_outbox: Outbox | None = None  # messages.email
    sms_outbox: Outbox | None = None  # messages.sms
    consumers: list[EventStream] = field(default_factory=list)  # event streams, for /health
    _local_streams: dict[str, InProcessStream] = field(default_factory=dict)

    def require_pbx(self, name: str) -> Pbx:
        """The PBX named `name`: this process's own link, where it has one (there is one PBX
        then), else the named PBX's active process."""
        pbx = self.pbx
        if pbx is None and self.pbx_named is not None:
            pbx = self.pbx_named(name)
        if pbx is None:
            raise Unavailable("no PBX is connected").with_code("pbx_unavailable")
        return pbx

    def local_stream(self, name: str) -> InProcessStream:
        """Embedded (no Redis), the process's stand-in for the Redis stream of that name:
        one per name, so the producers and the consumer meet on it whichever starts first."""
        stream = self._local_streams.get(name)
        if stream is None:
            stream = self._local_streams[name] = InProcessStream(name)
        return stream
