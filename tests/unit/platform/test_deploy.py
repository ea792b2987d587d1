"""deploy/ says what the code reads: every CALLCARD_* name in the compose file, the systemd
units and the environment template is a setting, and the template explains every one.
No Docker engine here: the compose file is checked as YAML against what compose needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from crm_api.platform.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
TEMPLATE = DEPLOY / "callcard.env.example"
NAME = re.compile(r"\bCALLCARD_([A-Z0-9_]*[A-Z0-9])\b")  # not a CALLCARD_SMTP_* pattern
SETTINGS = {name.upper() for name in Settings.model_fields}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_template_lists_exactly_the_settings_each_explained() -> None:
    lines = TEMPLATE.read_text().splitlines()
    listed: list[str] = []
    for i, line in enumerate(lines):
        found = re.match(r"#?CALLCARD_([A-Z0-9_]+)=", line)
        if not found:
            continue
        listed.append(found.group(1))
        # A comment above each group says what it is for.
        above = next(x for x in reversed(lines[:i]) if not re.match(r"#?CALLCARD_\w+=", x))
        assert above.startswith("# "), f"CALLCARD_{found.group(1)} is not explained"
    assert len(listed) == len(set(listed)), "a setting is listed twice"
    assert set(listed) == SETTINGS, {
        "missing": sorted(SETTINGS - set(listed)),
        "unknown": sorted(set(listed) - SETTINGS),
    }


def test_the_template_is_a_valid_production_configuration() -> None:
    values = {}
    for line in TEMPLATE.read_text().splitlines():
        if line.startswith("CALLCARD_"):
            key, _, value = line.partition("=")
            values[key.removeprefix("CALLCARD_").lower()] = value
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    assert settings.environment == "production" and not settings.is_sqlite


def test_compose_runs_the_whole_product_with_two_of_api_and_telephony() -> None:
    services = compose()["services"]
    commands = {name: s.get("command") for name, s in services.items()}
    assert sorted(n for n, c in commands.items() if c == ["callcard", "api"]) == ["api1", "api2"]
    assert sorted(n for n, c in commands.items() if c == ["callcard", "telephony"]) == [
        "telephony1",
        "telephony2",
    ]
    assert [n for n, c in commands.items() if c == ["callcard", "sms"]] == ["sms"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert "--appendonly" in services["redis"]["command"]
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} waits for an unknown {dependency}"
    for name in ("api1", "api2", "telephony1", "telephony2", "sms"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    dockerfile = DEPLOY / "compose" / services["api1"]["build"]["dockerfile"].split("/")[-1]
    assert dockerfile.is_file()


def test_compose_settings_are_the_tests_settings() -> None:
    """The same variables, the same stores: PostgreSQL through asyncpg and Redis."""
    for name, service in compose()["services"].items():
        env = service.get("environment", {})
        for key in env:
            if key.startswith("CALLCARD_"):
                assert key.removeprefix("CALLCARD_") in SETTINGS, f"{name}: unknown {key}"
        if "CALLCARD_DATABASE_URL" in env:
            assert env["CALLCARD_DATABASE_URL"].startswith("postgresql+asyncpg://")
            assert env["CALLCARD_REDIS_URL"].startswith("redis://redis:")
            Settings(_env_file=None, database_url=env["CALLCARD_DATABASE_URL"])  # type: ignore[call-arg]


def test_nginx_upgrades_websockets_and_hides_metrics() -> None:
    for site in (DEPLOY / "compose" / "nginx.conf", DEPLOY / "nginx" / "callcard.conf"):
        text = site.read_text()
        ws = text[text.index("location /ws") :]
        ws = ws[: ws.index("}")]
        assert "proxy_http_version 1.1" in ws and "Upgrade $http_upgrade" in ws, site
        assert re.search(r"location = /metrics \{\s*return 404;", text), site


# What an access line may not carry: the query string (a lookup's phone, a search's name)
# in any of its spellings, nor the referrer (the page the search was typed on).
_PRIVATE_VARIABLES = re.compile(r"\$(request|request_uri|args|query_string|arg_\w+|http_referer)\b")


def test_nginx_access_lines_carry_no_query_strings() -> None:
    for site in (DEPLOY / "compose" / "nginx.conf", DEPLOY / "nginx" / "callcard.conf"):
        text = site.read_text()
        found = re.search(r"log_format callcard ((?:'[^']*'\s*)+);", text)
        assert found, f"{site}: no callcard log format"
        assert "$uri" in found[1], site
        assert not _PRIVATE_VARIABLES.search(found[1]), site
        servers = text.split("server {")[1:]
        assert servers, site
        for server in servers:
            # Every server logs in that format (nginx's default one has the whole request line).
            assert re.search(r"^\s*access_log \S+ callcard;", server, re.M), site


@pytest.mark.parametrize(
    "path",
    sorted(
        [*DEPLOY.glob("systemd/*"), *DEPLOY.glob("compose/*"), *DEPLOY.glob("*.yml")],
        key=str,
    ),
    ids=lambda p: p.name,
)
def test_every_callcard_name_in_deploy_is_a_setting(path: Path) -> None:
    for name in NAME.findall(path.read_text()):
        assert name in SETTINGS, f"{path.name}: CALLCARD_{name} is not a setting"
