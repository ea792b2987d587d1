"""Schemathesis over the OpenAPI document, against the API on PostgreSQL with the demo
data, as one role (a test file per role: the suite runs them side by side): no server
error, and every answer (status, content type, body) is one the document declares.

Operations that end the session they run in (logout, revoking a token, an admin's change
to a user: their own demotion, deactivation or new password) are fuzzed last, each by a
throwaway user of that role, so they cannot cut the main run short.

Bounded: a fixed number of examples per operation and a time budget per role, on two
workers. CALLCARD_FUZZ_SEED picks another seed (the default one makes CI repeatable)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_api.accounts.models import Role
from crm_api.seed import seed_demo
from support.children import dies_with_us
from support.factories import make_user
from support.server import RunningApi

EXAMPLES = 25
BUDGET_S = 125  # per role; a slower machine runs fewer examples, not longer
SELF_ENDING = ("logout", "revoke_token", "update_user")
SELF_ENDING_BUDGET_S = 8  # per role and operation
CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = os.environ.get("CALLCARD_FUZZ_SEED", "20261202")
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


async def _token(api: RunningApi, username: str, password: str) -> str:
    async with api.client() as http:
        r = await http.post("/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


async def _fuzz(
    api: RunningApi, token: str, workdir: Path, selection: list[str], budget_s: int
) -> tuple[int, str]:
    schemathesis = Path(sys.executable).with_name("schemathesis")
    proc = await asyncio.create_subprocess_exec(
        str(schemathesis),
        "--config-file",
        str(CONFIG),
        "run",
        f"{api.base_url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        *selection,
        "--checks",
        CHECKS,
        "--phases",
        "examples,fuzzing",
        "--max-examples",
        str(EXAMPLES),
        "--max-time",
        str(budget_s),
        "--seed",
        SEED,
        "--workers",
        "2",
        "--no-color",
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=dies_with_us(),
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


TIMEOUT_S = BUDGET_S + len(SELF_ENDING) * SELF_ENDING_BUDGET_S + 180  # and the start


async def fuzz_as(
    role: Role, api: RunningApi, db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """The whole document as `role`, then each self-ending operation as a throwaway user."""
    async with db() as session:
        made = await seed_demo(session, clients=20)
        throwaway = {op: await make_user(session, role) for op in SELF_ENDING}
        await session.commit()
    assert made is not None
    password = {u.username: u.password for u in made}
    # Logged in before any fuzzing: the fuzzed logins get this address throttled.
    token = await _token(api, role.value, password[role.value])
    everything_else = [a for op in SELF_ENDING for a in ("--exclude-operation-id", op)]
    code, report = await _fuzz(api, token, tmp_path, everything_else, BUDGET_S)
    assert code == 0, f"schemathesis as {role}:\n{report[-6000:]}"
    for op, actor in throwaway.items():
        only = ["--include-operation-id", op]
        code, report = await _fuzz(api, actor.token, tmp_path, only, SELF_ENDING_BUDGET_S)
        assert code == 0, f"schemathesis of {op} as a throwaway {role}:\n{report[-6000:]}"
        assert "Tested: 1" in report, report[-2000:]  # it ran, not only was selected
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        assert (await http.get("/api/v1/health")).status_code == 200


def fuzz_test(role: Role) -> Callable[..., Coroutine[Any, Any, None]]:
    """The test of one role, for a file of its own (the suite's workers share files)."""

    @pytest.mark.first
    @pytest.mark.timeout(TIMEOUT_S)
    @pytest.mark.parametrize("backend", ["postgres"], indirect=True)
    async def test(api: RunningApi, db: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
        await fuzz_as(role, api, db, tmp_path)

    return test
