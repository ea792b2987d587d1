"""The app matches a request against the features' routes in another order than the
OpenAPI document lists them (the hot routes first): every operation must still be the
one its own path reaches."""

import re
from typing import Any

from starlette.routing import Match

from crm_api.app import DOCUMENTED, MATCHED, create_app
from crm_api.platform.settings import Settings


def test_every_feature_is_both_matched_and_documented() -> None:
    assert sorted(m.__name__ for m in MATCHED) == sorted(m.__name__ for m in DOCUMENTED)
    assert len(set(MATCHED)) == len(MATCHED)


def _answering(app: Any, method: str, path: str) -> str | None:
    """The operation id of the route that answers, as the app's router picks it: the first
    full match, else the first route with the path but not the method."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    picked: Any = None
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL or (match == Match.PARTIAL and picked is None):
            picked = route
            if match == Match.FULL:
                break
    # An included router answers through the route it matches inside (FastAPI's own).
    inner = picked._match(scope)[2] if hasattr(picked, "_match") else picked
    return getattr(inner, "operation_id", None) or getattr(inner, "name", None)


def test_every_documented_operation_is_reached_by_its_own_path() -> None:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    doc = app.openapi()
    checked = 0
    for path, operations in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method, operation in operations.items():
            answering = _answering(app, method.upper(), concrete)
            assert answering == operation["operationId"], (method, concrete)
            checked += 1
    assert checked > 80
    assert _answering(app, "GET", "/api/v1/clients/export") == "export_clients"
    assert _answering(app, "GET", "/api/v1/clients/lookup") == "lookup_client_by_phone"
