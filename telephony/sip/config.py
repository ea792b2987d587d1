"""What a bridge worker process is started with: plain data, no pjsua2 (the pool and the
CRM import it without loading the library)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

CONFIG_VARIABLE = "SIP_WORKER_CONFIG"  # the worker's environment carries its JSON


@dataclass(frozen=True, slots=True)
class ProviderLogin:
    """Register at a SIP provider (digest authentication); pjsua refreshes the binding
    before it expires and retries a failed registration every `retry_s` seconds."""

    registrar: str  # sip:provider.example:5060
    username: str
    password: str
    domain: str = ""  # the AOR's domain; the registrar's host when empty
    expires_s: int = 300
    retry_s: int = 30


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    host: str
    port: int
    recordings_dir: str
    max_calls: int = 2
    tcp: bool = True
    login: ProviderLogin | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> WorkerConfig:
        data = json.loads(raw)
        login = data.pop("login", None)
        return cls(**data, login=ProviderLogin(**login) if login else None)
