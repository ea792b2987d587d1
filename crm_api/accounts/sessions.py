"""Telling open sockets that a user's sessions or rights changed (logout, password change,
token revoked, deactivation, new role). Every API worker hears it through the bus; each
socket of that user then re-checks its own token and rights and closes when they ended."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_api.accounts import notifier

if TYPE_CHECKING:
    from crm_api.platform.deps import Services


async def end_sessions_of(services: Services, user_id: int) -> None:
    services.tokens.forget_user(user_id)
    await notifier.session_changed(services.hub, user_id)
