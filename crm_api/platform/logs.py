"""Log lines as text (development) or JSON, one object a line (CALLCARD_LOG_FORMAT=json,
for journald/Loki/Elasticsearch), each carrying the call it is about."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO
from urllib.parse import parse_qsl

from telephony.call_context import current_call

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(call)s: %(message)s"


class CallIdFilter(logging.Filter):
    """Puts the current call's id on the record (`extra={"call_id": …}` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "call_id", None) is None:
            record.call_id = current_call.get()
        return True


class QueryValuesHidden(logging.Filter):
    """uvicorn's access lines keep each request's query parameters by name, not by value:
    a lookup's or a search's query is a client's phone number or name, which has no place
    in the logs (they are kept and shipped with fewer precautions than the database)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            path, _, query = str(args[2]).partition("?")
            if query:
                names = "&".join(f"{name}=…" for name, _ in parse_qsl(query, True))
                record.args = (*args[:2], f"{path}?{names}", *args[3:])
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        call_id = getattr(record, "call_id", None)
        record.call = f" [call {call_id}]" if call_id else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call_id = getattr(record, "call_id", None)
        if call_id:
            entry["call_id"] = call_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


LogFormat = Literal["text", "json"]


def log_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(CallIdFilter())
    handler.addFilter(QueryValuesHidden())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


def configure_logging(log_format: LogFormat, level: str = "INFO") -> None:
    """The root logger writes every line (uvicorn's included) through one handler."""
    root = logging.getLogger()
    root.handlers[:] = [log_handler(log_format)]
    root.setLevel(level.upper())
    # Alembic names each of its autogenerate plugins at INFO on every start; the
    # migrations it runs stay visible.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
