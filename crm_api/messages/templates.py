"""Message templates: `{name}`, `{first_name}`, `{manager}`, `{deal_title}`, `{deal_amount}`.

Plain named placeholders only: not Python's str.format, whose `{name.attr}` reaches into
objects and `{name:>200000}` pads a text to any length. Anything else in braces is left
as written. An SMS must still fit its limit once the placeholders are filled in."""

from __future__ import annotations

import re
from typing import Any

from crm_api.clients.models import Client

SMS_MAX_CHARS = 1600  # what the SMS form accepts, and what a filled-in text may reach
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def render(text: str, client: Client, extra: dict[str, Any] | None = None) -> str:
    parts = client.name.split()
    values: dict[str, Any] = {
        "name": client.name,
        # Russian cards are "Surname Name Patronymic"; address a person by name.
        "first_name": parts[1] if len(parts) >= 2 else client.name,
        "manager": client.manager.full_name if client.manager else "",
        **(extra or {}),
    }

    def fill(found: re.Match[str]) -> str:
        key = found.group(1)
        return str(values[key]) if key in values else found.group(0)

    return _PLACEHOLDER.sub(fill, text)


def fits_sms(text: str) -> bool:
    return len(text) <= SMS_MAX_CHARS
