"""Production is production in any spelling: no demo users with known passwords, the
session cookie only over HTTPS, and every answer carries the browser security headers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support.factories import PASSWORD, Actor
from support.server import RunningApi, running_api

from crm_api.accounts.models import Role
from crm_api.cli import _prepare_embedded, main
from crm_api.platform.settings import Settings


@pytest.mark.parametrize("spelling", ["production", "Production", "PRODUCTION", " production "])
def test_production_counts_in_any_case(spelling: str) -> None:
    assert Settings(_env_file=None, environment=spelling).is_production  # type: ignore[call-arg]


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(ValueError):
        Settings(_env_file=None, environment="prod")  # type: ignore[call-arg]


def test_run_in_production_never_seeds_demo_users(tmp_path: Path) -> None:
    db = tmp_path / "callcard.db"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="Production",
        database_url=f"sqlite+aiosqlite:///{db}",
        recordings_dir=tmp_path / "recordings",
        seed_demo_on_first_run=True,
    )
    _prepare_embedded(settings)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_seed_demo_is_refused_in_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCARD_ENVIRONMENT", "Production")
    monkeypatch.setenv("CALLCARD_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(SystemExit) as stop:
        main(["seed-demo"])
    assert "not in production" in str(stop.value)


async def test_security_headers_and_hsts_behind_https(
    api: RunningApi, actors: dict[Role, Actor]
) -> None:
    async with api.client() as http:
        r = await http.get("/health")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in r.headers  # plain HTTP: HSTS means nothing
        login = {"username": actors[Role.MANAGER].user.username, "password": PASSWORD}
        r = await http.post("/auth/login", json=login)
        assert "secure" not in r.headers["set-cookie"].lower()
        # Behind nginx's TLS (X-Forwarded-Proto from the trusted local proxy).
        https = {"X-Forwarded-Proto": "https"}
        r = await http.get("/health", headers=https)
        assert r.headers["strict-transport-security"].startswith("max-age=")
        r = await http.post("/auth/login", json=login, headers=https)
        assert "; secure" in r.headers["set-cookie"].lower()


async def test_the_session_cookie_is_secure_in_production(
    settings: Settings, actors: dict[Role, Actor]
) -> None:
    production = settings.model_copy(update={"environment": "production"})
    async with running_api(production) as api, api.client() as http:
        login = {"username": actors[Role.OPERATOR].user.username, "password": PASSWORD}
        r = await http.post("/auth/login", json=login)
        assert r.status_code == 200 and "; secure" in r.headers["set-cookie"].lower()
