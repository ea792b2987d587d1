"""Which services run beside the API, from the settings and the kind of process."""

from __future__ import annotations

import functools

from crm_api.calls.commands import start_remote_pbx
from crm_api.calls.pipeline import start_call_events
from crm_api.calls.sip import start_sip
from crm_api.calls.telephony import start_telephony
from crm_api.messages.email import start_email
from crm_api.messages.sms.pipeline import start_sms
from crm_api.platform.runtime import Feature
from crm_api.platform.settings import Settings
from crm_api.tasks.reminders import start_reminders


def enabled_features(settings: Settings, *, embedded: bool) -> tuple[Feature, ...]:
    """`embedded` (`callcard run`): everything in one process. Otherwise (`callcard api`,
    one of N workers) only what any number of workers may run side by side; the PBX link,
    the SIP bridge and the SMPP bind run once, in `callcard telephony`, `callcard sip` and
    `callcard sms`; a worker's PBX commands (click-to-call) reach the active one of those
    through Redis."""
    # The e-mail outbox claims each message atomically, so every worker may run it.
    features: list[Feature] = [start_call_events, start_reminders, start_email]
    if not embedded:
        return (*features, start_remote_pbx)  # does nothing without Redis
    features.append(start_sms)  # starts only when CALLCARD_SMPP_URL is set
    if settings.ami_url:
        features.append(start_telephony)
    if settings.sip_bind:
        features.append(functools.partial(start_sip, workers=1))  # one worker, no Kamailio
    return tuple(features)
