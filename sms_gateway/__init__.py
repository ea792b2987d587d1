"""SMPP adapter for Callcard. It knows nothing of the CRM: an asyncio interface to send
and a stream of received messages and delivery receipts."""

from sms_gateway.config import SmppConfig
from sms_gateway.gateway import Incoming, SmsGateway
from sms_gateway.types import DeliveryReceipt, InboundSms, OutgoingSms, SendResult

__all__ = [
    "DeliveryReceipt",
    "InboundSms",
    "Incoming",
    "OutgoingSms",
    "SendResult",
    "SmppConfig",
    "SmsGateway",
]
