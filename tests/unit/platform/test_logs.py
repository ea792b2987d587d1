"""Log lines carry the call they are about, as text or as one JSON object a line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from crm_api.platform.logs import log_handler
from telephony.call_context import about_call


def capture(log_format: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    logger = logging.getLogger(f"test.logs.{log_format}")
    logger.handlers[:] = [log_handler(log_format, out)]  # type: ignore[arg-type]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, out


async def test_json_lines_carry_the_call_of_the_task_that_wrote_them() -> None:
    logger, out = capture("json")

    async def work(call_id: str) -> None:
        with about_call(call_id):
            logger.info("ringing")
            await asyncio.sleep(0.01)  # the other call's task runs meanwhile
            logger.warning("ended: %s", "answered")

    await asyncio.gather(work("1733130000.1"), work("1733130000.2"))
    logger.info("not about a call")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    about = {(line["message"], line.get("call_id")) for line in lines}
    assert about == {
        ("ringing", "1733130000.1"),
        ("ringing", "1733130000.2"),
        ("ended: answered", "1733130000.1"),
        ("ended: answered", "1733130000.2"),
        ("not about a call", None),
    }
    assert {line["level"] for line in lines} == {"INFO", "WARNING"}
    assert all(
        line["logger"] == "test.logs.json" and line["ts"].endswith("+00:00") for line in lines
    )


def test_exceptions_stay_inside_their_json_line() -> None:
    logger, out = capture("json")
    try:
        raise ValueError("Нет такого звонка")
    except ValueError:
        with about_call("42.7"):
            logger.exception("handler failed")
    [line] = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["call_id"] == "42.7"
    assert "ValueError: Нет такого звонка" in entry["exception"]


def test_text_lines_name_the_call() -> None:
    logger, out = capture("text")
    with about_call("99.1"):
        logger.info("popped")
    logger.info("idle")
    first, second = out.getvalue().splitlines()
    assert first.endswith("test.logs.text [call 99.1]: popped")
    assert second.endswith("test.logs.text: idle")


def test_access_lines_name_the_query_parameters_but_not_a_clients_number_or_name() -> None:
    out = io.StringIO()
    access = logging.getLogger("uvicorn.access")
    kept = access.handlers[:], access.propagate, access.level
    access.handlers[:] = [log_handler("json", out)]
    access.propagate, access.level = False, logging.INFO
    try:
        for path in (
            "/api/v1/clients/lookup?phone=%2B79161234567",
            "/api/v1/clients?q=%D0%A1%D0%B8%D0%B4%D0%BE%D1%80%D0%BE%D0%B2&page=2",
            "/health",
        ):  # as uvicorn writes them
            access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.5:51000", "GET", path, "1.1", 200)
    finally:
        access.handlers[:], access.propagate, access.level = kept
    lines = [json.loads(line)["message"] for line in out.getvalue().splitlines()]
    assert lines == [
        '10.0.0.5:51000 - "GET /api/v1/clients/lookup?phone=… HTTP/1.1" 200',
        '10.0.0.5:51000 - "GET /api/v1/clients?q=…&page=… HTTP/1.1" 200',
        '10.0.0.5:51000 - "GET /health HTTP/1.1" 200',
    ]


def test_migrate_names_each_migration_and_nothing_of_alembics_plugins(tmp_path: Path) -> None:
    env = {**os.environ, "CALLCARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cc.db"}
    done = subprocess.run(
        [sys.executable, "-m", "crm_api.cli", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "Running upgrade  -> 0001" in done.stderr
    assert "setup plugin" not in done.stderr
