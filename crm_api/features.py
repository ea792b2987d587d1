"""Which services run beside the API, from the settings."""

from __future__ import annotations

import functools

from crm_api.app import Feature
from crm_api.calls.pipeline import start_call_events
from crm_api.messaging.email import start_email
from crm_api.reminders import missed_call_hook, start_reminders
from crm_api.settings import Settings
from crm_api.sms.pipeline import start_sms


def enabled_features(settings: Settings) -> tuple[Feature, ...]:
    # A missed call becomes a callback task in the call-event service's own transaction.
    call_events: Feature = functools.partial(start_call_events, on_missed=missed_call_hook)
    features: list[Feature] = [call_events, start_reminders]
    # Each starts only when its server is configured (CALLCARD_SMPP_URL, CALLCARD_SMTP_HOST).
    features += [start_sms, start_email]
    return tuple(features)
