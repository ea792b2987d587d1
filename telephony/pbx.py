"""What the CRM may ask of a PBX, whichever adapter serves it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PbxError(Exception):
    """The PBX refused or could not be reached; `reason` is a stable slug."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    crm_call_id: str  # carried as channel variable CRM_CALL_ID onto every event
    agent: str  # the manager's extension, rung first
    number: str  # the client's number, dialled through the outbound context
    caller_id: str | None = None
    timeout_s: float = 30.0
    agent_uri: str | None = None  # the SIP URI on the manager's profile: a SIP bridge dials it


class Pbx(Protocol):
    @property
    def up(self) -> bool:
        """The link takes commands now (logged in, a worker alive)."""
        ...

    async def originate(self, request: OriginateRequest) -> None: ...

    async def redirect(self, call_id: str, extension: str) -> None: ...

    async def hangup(self, call_id: str) -> None: ...
