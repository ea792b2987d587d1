"""The OpenAPI fuzz (`support.fuzz`) as an operator."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.fuzz import TIMEOUT_S, fuzz_as
from support.server import RunningApi

from crm_api.accounts.models import Role


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.mark.timeout(TIMEOUT_S)
async def test_openapi_fuzzing_as_an_operator_finds_no_server_error_and_no_undeclared_answer(
    api: RunningApi, db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await fuzz_as(Role.OPERATOR, api, db, tmp_path)
