"""Schemathesis over the OpenAPI document, against the API on PostgreSQL with the demo
data, as an operator and as an admin: no server error, and every answer (status, content
type, body) is one the document declares.

Bounded: a fixed number of examples per operation and a time budget per role, on two
workers. CALLCARD_FUZZ_SEED picks another seed (the default one makes CI repeatable)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.server import RunningApi

from crm_api.seed import seed_demo

EXAMPLES = 25
BUDGET_S = 150  # per role; a slower machine runs fewer examples, not longer
CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = os.environ.get("CALLCARD_FUZZ_SEED", "20261202")
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


@pytest.fixture
def backend() -> str:
    return "postgres"


async def _token(api: RunningApi, username: str, password: str) -> str:
    async with api.client() as http:
        r = await http.post("/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


async def _fuzz(api: RunningApi, token: str, workdir: Path) -> tuple[int, str]:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    proc = await asyncio.create_subprocess_exec(
        str(schemathesis),
        "--config-file",
        str(CONFIG),
        "run",
        f"{api.base_url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        # These would end the very session the fuzzer uses (or the user's own rights).
        "--exclude-operation-id",
        "logout",
        "--exclude-operation-id",
        "revoke_token",
        "--exclude-operation-id",
        "update_user",
        "--checks",
        CHECKS,
        "--phases",
        "examples,fuzzing",
        "--max-examples",
        str(EXAMPLES),
        "--max-time",
        str(BUDGET_S),
        "--seed",
        SEED,
        "--workers",
        "2",
        "--no-color",
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.timeout(2 * BUDGET_S + 120)
async def test_openapi_fuzzing_finds_no_server_error_and_no_undeclared_answer(
    api: RunningApi, db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with db() as session:
        made = await seed_demo(session, clients=20)
        await session.commit()
    assert made is not None
    password = {u.username: u.password for u in made}
    # Both log in before any fuzzing: the fuzzed logins get this address throttled.
    tokens = {u: await _token(api, u, password[u]) for u in ("operator", "admin")}
    for username, token in tokens.items():
        code, report = await _fuzz(api, token, tmp_path)
        assert code == 0, f"schemathesis as {username}:\n{report[-6000:]}"
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        assert (await http.get("/api/v1/health")).status_code == 200
