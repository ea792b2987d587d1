"""Imports point one way (README, "How it fits together"):

- the adapters (`telephony`, `sms_gateway`) never import the CRM;
- `crm_api/platform/` imports no feature but `accounts` (who is asking, and may they:
  every request's dependency and /ws need it);
- a feature uses another through its models, use cases and schemas, never through its
  routers: a router (`http.py`, `*_http.py`) is imported by the composition root alone;
- nothing below the composition root (`app.py`, `cli.py`, `features.py`, `seed.py`,
  `models.py`) imports it;
- use cases take no HTTP request models (those of `schemas.py`; the values they take are
  in the feature's `types.py`), and routers run no ORM queries: the routers that still do
  are listed below, and the list may only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FEATURES = {"accounts", "calls", "clients", "messages", "sales", "schedules", "tasks"}
COMPOSITION = {f"crm_api.{name}" for name in ("app", "cli", "features", "seed", "models")}
ROUTERS_WITH_QUERIES: set[str] = set()  # none left: the calls router went thin too
QUERY_CALLS = {"select", "update", "delete", "insert"}
QUERY_METHODS = {"get", "scalar", "scalars", "execute", "add", "delete"}


@dataclass(frozen=True)
class Module:
    name: str
    tree: ast.Module

    @property
    def is_router(self) -> bool:
        return is_router_name(self.name)

    def imports(self) -> set[str]:
        """Every module imported, with `from package import module` counted as the module."""
        found: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        return found

    def imported_names(self, module_suffix: str) -> set[str]:
        return {
            alias.name
            for node in ast.walk(self.tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith(module_suffix)
            for alias in node.names
        }


def modules(package: str) -> list[Module]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic's env and revisions see every table by design
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append(Module(name, ast.parse(path.read_text(), str(path))))
    return found


def feature_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "crm_api" else None


def is_router_name(module: str) -> bool:
    leaf = module.rsplit(".", 1)[-1]
    return feature_of(module) in FEATURES and (leaf == "http" or leaf.endswith("_http"))


def wrong_imports(mods: list[Module], allowed: Callable[[Module, str], bool]) -> list[str]:
    return sorted(
        f"{m.name} imports {target}"
        for m in mods
        for target in m.imports()
        if target.startswith("crm_api") and not allowed(m, target)
    )


def test_adapters_never_import_the_crm() -> None:
    mods = modules("telephony") + modules("sms_gateway")
    assert len(mods) > 10
    assert wrong_imports(mods, lambda m, target: False) == []


def test_platform_imports_no_feature_but_accounts() -> None:
    mods = modules("crm_api/platform")
    assert any(m.name == "crm_api.platform.deps" for m in mods)

    def allowed(_m: Module, target: str) -> bool:
        return target == "crm_api" or feature_of(target) in ("platform", "accounts")

    assert wrong_imports(mods, allowed) == []


def test_routers_are_imported_by_the_composition_root_alone() -> None:
    mods = [m for m in modules("crm_api") if m.name not in COMPOSITION]

    def allowed(m: Module, target: str) -> bool:
        return not is_router_name(target) or target == m.name

    assert wrong_imports(mods, allowed) == []


def test_nothing_below_the_composition_root_imports_it() -> None:
    mods = [m for m in modules("crm_api") if m.name not in COMPOSITION]
    assert wrong_imports(mods, lambda _m, target: target not in COMPOSITION) == []


def _takes_request_models(m: Module) -> bool:
    names = m.imported_names(".schemas")
    return any(n.endswith(("Create", "Update", "In", "Filters", "Close", "Handoff")) for n in names)


def test_use_cases_take_no_http_request_models() -> None:
    offenders = {
        m.name
        for m in modules("crm_api")
        if not m.is_router
        and m.name not in COMPOSITION
        and not m.name.endswith(("schemas", "presenters"))  # the HTTP side
        and _takes_request_models(m)
    }
    assert offenders == set()


def _runs_queries(m: Module) -> bool:
    for node in ast.walk(m.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in QUERY_CALLS:
            return True
        if (
            isinstance(func, ast.Attribute)
            and func.attr in QUERY_METHODS
            and isinstance(func.value, ast.Name)
            and func.value.id == "session"
        ):
            return True
    return False


def test_no_new_router_runs_orm_queries() -> None:
    routers = [m for m in modules("crm_api") if m.is_router]
    assert len(routers) >= 10
    offenders = {m.name for m in routers if _runs_queries(m)}
    assert offenders <= ROUTERS_WITH_QUERIES, offenders - ROUTERS_WITH_QUERIES
    assert offenders == ROUTERS_WITH_QUERIES


def test_the_checks_see_a_wrong_import() -> None:
    bad = Module("telephony.x", ast.parse("from crm_api.clients import http\nimport crm_api.app"))
    assert wrong_imports([bad], lambda m, target: False) == [
        "telephony.x imports crm_api.app",
        "telephony.x imports crm_api.clients",
        "telephony.x imports crm_api.clients.http",
    ]
    assert is_router_name("crm_api.clients.http") and is_router_name("crm_api.sales.plans_http")
    router = Module("crm_api.x.http", ast.parse("async def f(session):\n    session.get(A, 1)"))
    assert _runs_queries(router)
    service = Module("crm_api.x.service", ast.parse("from crm_api.x.schemas import XCreate"))
    assert _takes_request_models(service)
