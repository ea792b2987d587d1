"""Who may listen to a call's recording: staff who review calls, and the user who took
the call (as recorded at the time). Not by extension: a phone that only rang did not
take part, and whoever gets that extension later was not on the call."""

from __future__ import annotations

from crm_api.accounts.models import User
from crm_api.accounts.permissions import Permission, allowed
from crm_api.calls.models import Call


def may_hear(user: User, call: Call) -> bool:
    return allowed(user.role, Permission.CALLS_REVIEW) or (
        call.user_id is not None and call.user_id == user.id
    )
