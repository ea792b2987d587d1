"""Every knob is a CALLCARD_* environment variable (or a line in `.env`)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")
# Short enough for "call:<name>:<the PBX's call id>", a call's timeline entry (100 chars).
PbxName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,48}$")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLCARD_", env_file=".env", extra="ignore")

    environment: str = "development"  # development | production (any case)
    database_url: str = f"sqlite+aiosqlite:///{VAR_DIR / 'callcard.db'}"
    redis_url: str | None = None  # unset → the in-process bus
    bind_host: str = "127.0.0.1"
    bind_port: int = 8000
    session_ttl_hours: int = 24 * 14
    session_idle_minutes: int = 12 * 60  # a browser session unused this long has ended
    session_touch_seconds: float = 60.0  # an open /ws marks its session used this often
    api_token_days: int = 90  # the longest an API token may live
    link_token_minutes: int = 10  # `?token=` links (WebSocket, recording URLs)
    # Other origins whose pages may write with the session cookie (a dev server, say).
    allowed_origins: tuple[str, ...] = ()
    login_free_failures: int = 5  # per account; then each wrong password doubles the wait
    login_free_failures_per_address: int = 20
    cookie_secure: bool = False
    default_region: str = "RU"
    timezone: str = "Europe/Moscow"
    recordings_dir: Path = VAR_DIR / "recordings"
    ui_dist: Path = Path(__file__).resolve().parent.parent / "ui" / "dist"
    ws_backlog: int = 200  # frames kept per user for a reconnecting socket
    import_max_rows: int = 100_000
    import_max_bytes: int = 10 * 1024 * 1024  # an uploaded CSV/XLSX file
    import_batch_rows: int = 500  # clients created per transaction of an import
    log_format: Literal["text", "json"] = "text"  # json: one object a line, with call_id
    log_level: str = "INFO"
    metrics_bind: str | None = None  # host:port of telephony's and sms's Prometheus metrics
    stream_lag_alert_s: float = 30.0  # an event waiting longer makes /health/ready say so

    ami_url: str | None = None  # ami://user:secret@host:5038
    ami_outbound_context: str = "internal"  # where click-to-call dials the client's number
    agi_bind: str = "127.0.0.1:4573"
    agi_decide_within: float = 0.8  # seconds the caller may wait for the routing answer
    telephony_lease_s: float = 3.0  # a standby takes over this long after the active dies
    # An API worker's PBX command (click-to-call) waits this long for the active telephony
    # process to take it (through a failover too), then fails and is never run.
    pbx_command_wait_s: float = Field(default=10.0, gt=0)
    # The PBX a `callcard telephony` pair (or `callcard sip`) serves: it takes only the
    # commands named for it. On API workers: the PBX of every extension not listed in
    # `pbx_extensions` (extension prefix → PBX name, the longest prefix wins).
    pbx_name: PbxName = "pbx"
    pbx_extensions: dict[str, PbxName] = Field(default_factory=dict)
    # The call-event stream's partitions, shared among the API workers (the same everywhere;
    # change it only with the stream drained); a dead worker's are taken over after the lease.
    call_partitions: int = Field(default=8, ge=1, le=256)
    call_partition_lease_s: float = 3.0
    # The SIP bridge (pjsua2 workers): set to answer a SIP trunk without Asterisk. Worker i
    # listens on the port + i (UDP and TCP); `callcard run` starts one, `callcard sip` N.
    sip_bind: str | None = None  # e.g. 127.0.0.1:5070
    sip_workers: int = Field(default=2, ge=1, le=64)  # `callcard sip`: 2 bridged calls each
    sip_phone_uri: str = "sip:{user}@127.0.0.1:5060"  # a manager's extension (the registrar)
    sip_trunk_uri: str = "sip:{user}@127.0.0.1:5080"  # click-to-call: the client's number
    sip_ring_timeout: float = 20.0  # seconds a manager's phone rings before the next one
    sip_max_attempts: int = Field(default=3, ge=1)  # managers tried for one incoming call
    sip_route_within: float = 2.0  # seconds the routing answer may take, else missed
    sip_registrar: str | None = None  # sip:provider:5060: the first worker registers there
    sip_username: str = ""
    sip_password: SecretStr = SecretStr("")
    sip_register_retry: int = Field(default=30, ge=1)  # seconds after a failed registration
    # `callcard telephony` keeps call events here while Redis is away (beyond a memory bound).
    spool_dir: Path = VAR_DIR / "spool"
    spool_memory_events: int = 10_000
    call_max_s: float = 4 * 3600.0  # a call live longer than this ended long ago: ended
    call_sweep_every_s: float = 60.0
    smpp_url: str | None = None  # smpp://system_id:password@host:2775
    smpp_window: int = 50  # unanswered submit_sm at most
    smpp_max_rate: float = 0.0  # submit_sm per second, 0 = as fast as the window allows
    smpp_source_addr: str = "Callcard"  # sender name or number the SMSC allows us
    smpp_enquire_link_s: float = 30.0
    sms_bulk_rate: float = 20.0  # messages per second of a bulk send, unless it says
    sms_claim_s: float = 60.0  # a crashed SMS worker's messages are looked at after this
    sms_receipt_wait_s: float = 20.0  # how long a part maybe sent awaits its receipt
    sms_receipt_overdue_s: float = 600.0  # no receipt this long: ask the SMSC (query_sm)
    sms_receipt_deadline_s: float = 72 * 3600.0  # still undecided: the part ends "expired"
    smtp_host: str | None = None  # unset → e-mail stays queued
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "callcard@localhost"
    smtp_starttls: bool = False

    routing_fallback: str = "queue:sales"  # nobody on duty: `queue:<name>` or an extension
    stale_deal_days: int = 7  # an open deal idle this long gets a callback task
    reminder_poll_seconds: float = 1.0
    stale_deal_scan_seconds: float = 300.0
    morning: str = "09:00"  # "tomorrow morning" of a snoozed reminder, company time

    seed_demo_on_first_run: bool = True
    languages: tuple[str, ...] = Field(default=("ru", "en"))

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        # `Production` or `PRODUCTION` must not quietly run as development.
        value = value.strip().lower()
        if value not in ("development", "production"):
            raise ValueError("development or production")
        return value

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def host_port(bind: str) -> tuple[str, int]:
    """`host:port` of a *_BIND setting; an empty host is every interface."""
    host, _, port = bind.rpartition(":")
    return host or "0.0.0.0", int(port)
