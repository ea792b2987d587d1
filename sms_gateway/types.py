"""What the gateway hands its user: typed, decoded, free of SMPP details."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    destination: str  # digits of an E.164 number, with or without "+"
    text: str
    source: str = ""
    reference: int = 0  # ties the parts of a long message together on the phone


@dataclass(frozen=True, slots=True)
class PartResult:
    index: int
    message_id: str | None  # the SMSC's id, for delivery receipts
    status: int  # SMPP command_status, 0 = accepted


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of submitting every part. `outcome` is "submitted" when every part was
    accepted, "retry" when the SMSC asked to try later (throttled, queue full, link lost
    before an answer), "failed" when it refused the message for good."""

    outcome: str
    parts: tuple[PartResult, ...] = field(default_factory=tuple)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    message_id: str
    stat: str  # DELIVRD, EXPIRED, UNDELIV, ...
    outcome: str | None  # delivered | expired | failed | rejected, None if not final
    error: str | None = None
    handset: str = ""  # the number the message went to, as the SMSC writes it


@dataclass(frozen=True, slots=True)
class InboundSms:
    source: str
    destination: str
    text: str
    ref: str = ""  # what the SMSC identifies it by (see SmsGateway._ref_of): de-duplication
