"""Message templates: `{name}`, `{first_name}`, `{manager}`, `{deal_title}`, `{deal_amount}`.
An unknown placeholder is left as written rather than failing the send."""

from __future__ import annotations

from typing import Any

from crm_api.clients.models import Client


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(text: str, client: Client, extra: dict[str, Any] | None = None) -> str:
    parts = client.name.split()
    values = _Keep(
        name=client.name,
        # Russian cards are "Surname Name Patronymic"; address a person by name.
        first_name=parts[1] if len(parts) >= 2 else client.name,
        manager=client.manager.full_name if client.manager else "",
        **(extra or {}),
    )
    try:
        return text.format_map(values)
    except (ValueError, IndexError):  # a stray "{" in the text: send it as written
        return text
