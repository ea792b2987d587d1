"""Which services run beside the API, from the settings."""

from __future__ import annotations

from crm_api.app import Feature
from crm_api.calls.pipeline import start_call_events
from crm_api.settings import Settings


def enabled_features(settings: Settings) -> tuple[Feature, ...]:
    features: list[Feature] = [start_call_events]
    return tuple(features)
