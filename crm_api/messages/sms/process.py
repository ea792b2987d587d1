"""`callcard sms`: the SMPP gateway and the SMS/e-mail workers as their own process, one
per SMSC bind. Frames reach browsers through the Redis bus of the API workers."""

from __future__ import annotations

import asyncio

from crm_api.messages.email import start_email
from crm_api.messages.sms.pipeline import start_sms
from crm_api.platform.runtime import run_headless
from crm_api.platform.settings import Settings


async def run_sms(settings: Settings, stop: asyncio.Event | None = None) -> None:
    if not settings.smpp_url:
        raise SystemExit("CALLCARD_SMPP_URL is not set (smpp://system_id:password@host:2775)")
    await run_headless(settings, (start_sms, start_email), stop)
