"""One bridged call as a pure state machine: the worker's leg events in, SIP commands and
normalized call events out. No I/O and no clock of its own (times are given).

Incoming (`InboundCall`): the trunk's INVITE gets 180 and a routing ask; the chosen
manager's phone is dialled; on its answer the caller gets 200 and both legs are bridged
and recorded. A phone that rings out (`ring_timeout_s`) or cannot be reached is cancelled
and the routing policy asked again (it offers a manager not yet tried); nobody left →
missed, 480 to the caller. A busy phone (486/600/603) ends the call busy, 486 to the
caller. The caller's CANCEL before the answer → abandoned (the phone leg is cancelled).
After the answer a BYE from either side ends the other leg.

Click-to-call (`ClickToCall`): the manager's phone first; once answered the client's
number through the trunk; bridged and recorded on the client's answer. The manager's
phone not answering ends the call as one OriginateFailed (as the AMI adapter does).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from telephony import events as ev
from telephony.sip import messages as msg
from telephony.sip.uri import agent_of, dial_uri

BUSY_CODES = frozenset({486, 600, 603})
MISSED_CODE = 480  # to the caller when nobody answered
CAPACITY_CODE = 503

# SIP final response → Q.850 cause (RFC 3398 §7.2.4.1, the codes a bridge meets).
_Q850 = {
    200: 16,
    404: 1,
    408: 102,
    480: 18,
    484: 28,
    486: 17,
    487: 16,
    488: 65,
    500: 41,
    502: 38,
    503: 34,
    600: 17,
    603: 21,
}


def q850(code: int) -> int:
    return _Q850.get(code, 31)  # 31: normal, unspecified


@dataclass(frozen=True, slots=True)
class AskRoute:
    """The pool asks the routing policy; the answer goes to `routed`."""

    call_id: str
    attempt: int
    caller: str | None
    caller_name: str | None
    did: str | None


@dataclass(frozen=True, slots=True)
class Phone:
    """A routing answer with the manager's own SIP URI: the call rings `uri` and is the
    extension's (its agent)."""

    extension: str
    uri: str


Output = msg.Command | ev.CallEvent | AskRoute


class Phase(enum.StrEnum):
    ROUTING = "routing"  # inbound: waiting for the routing answer
    AGENT = "agent"  # click-to-call: the manager's phone rings
    RINGING = "ringing"  # the other party's phone rings
    BRIDGED = "bridged"
    ENDED = "ended"


def _seconds(a: datetime, b: datetime) -> float:
    return round(max((b - a).total_seconds(), 0.0), 3)


class _Call:
    def __init__(self, call_id: str, at: datetime, recordings_dir: str) -> None:
        self.call_id = call_id
        self.started_at = at
        self.answered_at: datetime | None = None
        self.deadline: datetime | None = None
        self.phase = Phase.ROUTING
        self.crm_call_id: str | None = None
        self.recording = f"{recordings_dir.rstrip('/')}/{call_id}.wav" if recordings_dir else ""

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    def legs(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _finish(
        self,
        at: datetime,
        direction: ev.Direction,
        disposition: ev.Disposition,
        code: int,
        *,
        caller: str | None,
        callee: str | None,
        agents: tuple[str, ...],
        answered_by: str | None,
    ) -> ev.CallEnded:
        """The call is over: its end as the CRM gets it (`code`: the SIP final status)."""
        self.phase = Phase.ENDED
        self.deadline = None
        return ev.CallEnded(
            call_id=self.call_id,
            at=at,
            crm_call_id=self.crm_call_id,
            direction=direction,
            disposition=disposition,
            cause=q850(code),
            cause_text=str(disposition),
            caller=caller,
            callee=callee,
            ring_s=_seconds(self.started_at, self.answered_at or at),
            talk_s=_seconds(self.answered_at, at) if self.answered_at else 0.0,
            agents=agents,
            answered_by=answered_by,
        )

    def _bridge(self, a: str, b: str, at: datetime, agent: str | None) -> list[Output]:
        self.phase = Phase.BRIDGED
        self.answered_at = at
        self.deadline = None
        name = f"{self.call_id}.wav"
        return [
            msg.Bridge(a=a, b=b, recording=name),
            ev.CallAnswered(call_id=self.call_id, at=at, crm_call_id=self.crm_call_id, agent=agent),
            ev.RecordingStarted(
                call_id=self.call_id,
                at=at,
                crm_call_id=self.crm_call_id,
                file=self.recording or name,
            ),
        ]


class InboundCall(_Call):
    def __init__(
        self,
        *,
        call_id: str,
        leg: str,
        caller: str | None,
        caller_name: str | None,
        did: str | None,
        at: datetime,
        ring_timeout_s: float,
        max_attempts: int,
        phone_uri: str,
        recordings_dir: str = "",
        sip_call_id: str | None = None,
    ) -> None:
        super().__init__(call_id, at, recordings_dir)
        self.sip_call_id = sip_call_id  # the trunk's: the phone leg carries it for tracing
        self.phone_uri = phone_uri  # `sip:{user}@registrar`: where an extension is dialled
        self.leg = leg
        self.caller = caller
        self.caller_name = caller_name
        self.did = did
        self.ring_timeout = timedelta(seconds=ring_timeout_s)
        self.max_attempts = max_attempts
        self.attempt = 0
        self.phone: str | None = None  # the leg to the phone ringing or talking now
        self.agent: str | None = None
        self.tried: list[str] = []

    def legs(self) -> tuple[str, ...]:
        return (self.leg, self.phone) if self.phone else (self.leg,)

    def start(self) -> list[Output]:
        return [
            msg.Ring(leg=self.leg),
            ev.CallStarted(
                call_id=self.call_id,
                at=self.started_at,
                direction=ev.Direction.INBOUND,
                caller=self.caller,
                callee=self.did,
                caller_name=self.caller_name,
                did=self.did,
            ),
            *self._ask(),
        ]

    def _ask(self) -> list[Output]:
        self.phase = Phase.ROUTING
        self.attempt += 1
        self.phone = self.agent = None
        self.deadline = None
        return [AskRoute(self.call_id, self.attempt, self.caller, self.caller_name, self.did)]

    def routed(self, attempt: int, answer: str | Phone | None, at: datetime) -> list[Output]:
        """The routing policy's answer: an extension or SIP URI, a `Phone`, or None for
        nobody."""
        if self.phase is not Phase.ROUTING or attempt != self.attempt:
            return []  # the caller left meanwhile, or a late answer to an older ask
        target = answer.extension if isinstance(answer, Phone) else answer
        if target is None or target.startswith("queue:") or target in self.tried:
            return self._end(ev.Disposition.MISSED, MISSED_CODE, at, to_caller=MISSED_CODE)
        self.tried.append(target)
        try:
            uri = answer.uri if isinstance(answer, Phone) else dial_uri(target, self.phone_uri)
        except ValueError:
            return self._next(at, phone_gone=True)
        self.phase = Phase.RINGING
        self.phone = f"{self.call_id}.{attempt}"
        self.agent = agent_of(target)
        self.deadline = at + self.ring_timeout
        return [
            msg.Dial(
                leg=self.phone,
                uri=uri,
                pair=self.leg,
                caller=self.caller,
                caller_name=self.caller_name,
                reference=self.sip_call_id,
            ),
            ev.CallRinging(
                call_id=self.call_id,
                at=at,
                agent=self.agent,
                caller=self.caller,
                caller_name=self.caller_name,
            ),
        ]

    def on_event(self, event: msg.WorkerEvent, at: datetime) -> list[Output]:
        if self.ended or not isinstance(event, msg.Answered | msg.Ended):
            return []
        if event.leg == self.leg:
            if isinstance(event, msg.Answered):
                return []  # our own 200 confirmed by the caller's ACK
            if self.phase is Phase.BRIDGED:
                return self._end(ev.Disposition.ANSWERED, 200, at, caller_gone=True)
            return self._end(ev.Disposition.ABANDONED, 487, at, caller_gone=True)
        if event.leg != self.phone:
            return []  # a phone leg given up earlier, ending late
        if isinstance(event, msg.Answered):
            if self.phase is not Phase.RINGING:
                return []
            return [msg.Answer(leg=self.leg), *self._bridge(self.leg, self.phone, at, self.agent)]
        if self.phase is Phase.BRIDGED:
            return self._end(ev.Disposition.ANSWERED, 200, at, phone_gone=True)
        if event.code in BUSY_CODES:
            return self._end(ev.Disposition.BUSY, 486, at, to_caller=486, phone_gone=True)
        return self._next(at, phone_gone=True)  # unreachable, declined by timeout, failed

    def tick(self, now: datetime) -> list[Output]:
        if self.phase is Phase.RINGING and self.deadline is not None and now >= self.deadline:
            return self._next(now, phone_gone=False)
        return []

    def hangup(self, at: datetime) -> list[Output]:
        """The CRM hangs the call up: both legs go; unanswered, the caller gets 480."""
        if self.ended:
            return []
        if self.phase is Phase.BRIDGED:
            return self._end(ev.Disposition.ANSWERED, 200, at)
        return self._end(ev.Disposition.MISSED, MISSED_CODE, at, to_caller=MISSED_CODE)

    def abort(self, at: datetime) -> list[Output]:
        """The worker carrying the call is gone: the call failed."""
        if self.ended:
            return []
        return self._end(ev.Disposition.FAILED, 500, at, phone_gone=True, caller_gone=True)

    def _next(self, at: datetime, *, phone_gone: bool) -> list[Output]:
        out: list[Output] = []
        if not phone_gone and self.phone is not None:
            out.append(msg.Hangup(leg=self.phone, code=487))
        if self.attempt >= self.max_attempts:
            return out + self._end(
                ev.Disposition.MISSED, MISSED_CODE, at, to_caller=MISSED_CODE, phone_gone=True
            )
        return out + self._ask()

    def _end(
        self,
        disposition: ev.Disposition,
        code: int,
        at: datetime,
        *,
        to_caller: int = 200,
        phone_gone: bool = False,
        caller_gone: bool = False,
    ) -> list[Output]:
        out: list[Output] = []
        if self.phone is not None and not phone_gone:
            out.append(msg.Hangup(leg=self.phone, code=487))
        if not caller_gone:
            out.append(msg.Hangup(leg=self.leg, code=to_caller))
        talked = self.agent if self.answered_at is not None else None
        out.append(
            self._finish(
                at,
                ev.Direction.INBOUND,
                disposition,
                code,
                caller=self.caller,
                callee=self.did,
                agents=(talked,) if talked else (),
                answered_by=talked,
            )
        )
        return out


def originate_failure(code: int) -> str:
    """OriginateFailed.reason for the manager's phone's final response."""
    if code in BUSY_CODES:
        return "agent_busy"
    if code in (404, 410, 480, 484):
        return "extension_offline"
    if code in (408, 487):
        return "agent_no_answer"
    return "failed"


class ClickToCall(_Call):
    def __init__(
        self,
        *,
        call_id: str,
        crm_call_id: str,
        agent: str,
        agent_uri: str,
        number: str,
        client_uri: str,
        at: datetime,
        agent_timeout_s: float,
        client_timeout_s: float,
        recordings_dir: str = "",
    ) -> None:
        super().__init__(call_id, at, recordings_dir)
        self.crm_call_id = crm_call_id
        self.agent = agent
        self.agent_uri = agent_uri
        self.number = number
        self.client_uri = client_uri
        self.client_timeout = timedelta(seconds=client_timeout_s)
        self.agent_leg = f"{call_id}.agent"
        self.client_leg = f"{call_id}.client"
        self.phase = Phase.AGENT
        self.deadline = at + timedelta(seconds=agent_timeout_s)
        self.client_dialled = False

    def legs(self) -> tuple[str, ...]:
        return (self.agent_leg, self.client_leg) if self.client_dialled else (self.agent_leg,)

    def start(self) -> list[Output]:
        return [msg.Dial(leg=self.agent_leg, uri=self.agent_uri, caller=self.number)]

    def on_event(self, event: msg.WorkerEvent, at: datetime) -> list[Output]:
        if self.ended or not isinstance(event, msg.Answered | msg.Ended):
            return []
        if event.leg == self.agent_leg:
            if isinstance(event, msg.Answered):
                return self._agent_answered(at) if self.phase is Phase.AGENT else []
            if self.phase is Phase.AGENT:
                return self._failed(originate_failure(event.code), at, agent_gone=True)
            disposition = (
                ev.Disposition.ANSWERED if self.phase is Phase.BRIDGED else ev.Disposition.ABANDONED
            )
            return self._end(disposition, 200, at, agent_gone=True)
        if event.leg != self.client_leg:
            return []
        if isinstance(event, msg.Answered):
            if self.phase is not Phase.RINGING:
                return []
            return self._bridge(self.agent_leg, self.client_leg, at, None)
        if self.phase is Phase.BRIDGED:
            return self._end(ev.Disposition.ANSWERED, 200, at, client_gone=True)
        disposition = (
            ev.Disposition.BUSY
            if event.code in BUSY_CODES
            else ev.Disposition.MISSED
            if event.code in (408, 480, 487)
            else ev.Disposition.FAILED
        )
        return self._end(disposition, event.code, at, client_gone=True)

    def _agent_answered(self, at: datetime) -> list[Output]:
        self.phase = Phase.RINGING
        self.client_dialled = True
        self.deadline = at + self.client_timeout
        call, crm = self.call_id, self.crm_call_id
        return [
            msg.Dial(leg=self.client_leg, uri=self.client_uri, pair=self.agent_leg),
            ev.CallStarted(
                call_id=call,
                at=at,
                crm_call_id=crm,
                direction=ev.Direction.OUTBOUND,
                caller=self.agent,
                callee=self.number,
            ),
            ev.CallRinging(call_id=call, at=at, crm_call_id=crm, agent=self.agent),
        ]

    def tick(self, now: datetime) -> list[Output]:
        if self.deadline is None or now < self.deadline:
            return []
        if self.phase is Phase.AGENT:
            return self._failed("agent_no_answer", now)
        if self.phase is Phase.RINGING:
            return self._end(ev.Disposition.MISSED, 480, now)
        return []

    def abort(self, at: datetime) -> list[Output]:
        if self.ended:
            return []
        if self.phase is Phase.AGENT:
            return self._failed("failed", at, agent_gone=True)
        return self._end(ev.Disposition.FAILED, 500, at, agent_gone=True, client_gone=True)

    def hangup(self, at: datetime) -> list[Output]:
        """The CRM hangs the call up."""
        if self.ended:
            return []
        if self.phase is Phase.AGENT:
            return self._failed("agent_no_answer", at)
        disposition = (
            ev.Disposition.ANSWERED if self.phase is Phase.BRIDGED else ev.Disposition.ABANDONED
        )
        return self._end(disposition, 200, at)

    def _failed(self, reason: str, at: datetime, *, agent_gone: bool = False) -> list[Output]:
        self.phase = Phase.ENDED
        self.deadline = None
        out: list[Output] = [] if agent_gone else [msg.Hangup(leg=self.agent_leg, code=487)]
        return [
            *out,
            ev.OriginateFailed(
                call_id=self.call_id, at=at, crm_call_id=self.crm_call_id, reason=reason
            ),
        ]

    def _end(
        self,
        disposition: ev.Disposition,
        code: int,
        at: datetime,
        *,
        agent_gone: bool = False,
        client_gone: bool = False,
    ) -> list[Output]:
        out: list[Output] = []
        if not client_gone and self.client_dialled:
            out.append(msg.Hangup(leg=self.client_leg, code=487))
        if not agent_gone:
            out.append(msg.Hangup(leg=self.agent_leg, code=487))
        out.append(
            self._finish(
                at,
                ev.Direction.OUTBOUND,
                disposition,
                code,
                caller=self.agent,
                callee=self.number,
                agents=(self.agent,),
                answered_by=None,
            )
        )
        return out


BridgeCall = InboundCall | ClickToCall
