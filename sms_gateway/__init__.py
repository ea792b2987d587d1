"""SMPP adapter for Callcard. It knows nothing of the CRM: an asyncio interface to send
and a stream of received messages and delivery receipts."""
