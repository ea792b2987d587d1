"""Which services run beside the API, from the settings."""

from __future__ import annotations

from crm_api.app import Feature
from crm_api.calls.pipeline import start_call_events
from crm_api.messaging.email import start_email
from crm_api.settings import Settings
from crm_api.sms.pipeline import start_sms


def enabled_features(settings: Settings) -> tuple[Feature, ...]:
    features: list[Feature] = [start_call_events]
    # Each starts only when its server is configured (CALLCARD_SMPP_URL, CALLCARD_SMTP_HOST).
    features += [start_sms, start_email]
    return tuple(features)
