"""Who a token belongs to, remembered for a few seconds so that a request does not pay
a database round trip just to learn who is asking.

Per API worker; a logout or a change to the user on this worker takes effect at once,
on other workers within `ttl`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from crm_api.accounts.models import User


@dataclass
class TokenCache:
    ttl: float = 5.0
    max_size: int = 10_000
    _entries: dict[str, tuple[float, User]] = field(default_factory=dict)

    def get(self, token: str) -> User | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        expires, user = entry
        if expires < time.monotonic():
            del self._entries[token]
            return None
        return user

    def put(self, token: str, user: User) -> None:
        if len(self._entries) >= self.max_size:
            self._entries.clear()
        self._entries[token] = (time.monotonic() + self.ttl, user)

    def forget_token(self, token: str) -> None:
        self._entries.pop(token, None)

    def forget_user(self, user_id: int) -> None:
        for token in [t for t, (_, u) in self._entries.items() if u.id == user_id]:
            del self._entries[token]
