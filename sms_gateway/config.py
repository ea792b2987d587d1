"""How to reach the SMSC and how hard to push it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class SmppConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    source_addr: str = "Callcard"
    window: int = 50  # unanswered submit_sm at most
    max_rate: float = 0.0  # submit_sm per second, 0 = as fast as the window allows
    enquire_link_every: float = 30.0  # seconds of silence before we ask
    dead_link_after: float = 10.0  # seconds without an answer to enquire_link
    response_timeout: float = 30.0  # a request unanswered this long: the link is broken
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    throttle_pause: float = 1.0  # first pause after ESME_RTHROTTLED, doubled up to 8 s
    min_rate: float = 0.5  # ESME_RTHROTTLED never cuts the rate below this
    rate_step: float = 2.0  # after a cut, the rate grows back by this much per second
    connect_timeout: float = 5.0

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> SmppConfig:
        """`smpp://system_id:password@host:2775`"""
        parts = urlsplit(url)
        if parts.scheme != "smpp" or not parts.hostname or not parts.username:
            raise ValueError(f"not an smpp://system_id:password@host:port URL: {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or 2775,
            system_id=unquote(parts.username),
            password=unquote(parts.password or ""),
            **overrides,
        )
