"""The OpenAPI document says how to log in on exactly the routes behind `Authorize`, laid
out as FastAPI lays out a route's security dependencies (which `Authorize` no longer
declares: FastAPI solved them on every request)."""

from crm_api.accounts.route_table import route_table
from crm_api.app import create_app
from crm_api.platform.settings import Settings

LOGIN = [{"APIKeyCookie": []}, {"HTTPBearer": []}]


def test_every_route_behind_a_login_and_only_those_document_it() -> None:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    doc = app.openapi()
    checked = 0
    for route in route_table(app):
        operation = doc["paths"][route.path][route.method.lower()]
        assert operation.get("security") == (LOGIN if route.permission else None), route
        checked += 1
    assert checked > 80
    assert doc["components"]["securitySchemes"] == {
        "APIKeyCookie": {"type": "apiKey", "in": "cookie", "name": "callcard_session"},
        "HTTPBearer": {"type": "http", "scheme": "bearer"},
    }
    # FastAPI's layout: the schemes after the models, an operation's requirement right
    # after its name (where FastAPI leaves the operation as it built it).
    assert list(doc["components"]) == ["schemas", "securitySchemes"]
    lookup = doc["paths"]["/api/v1/clients/lookup"]["get"]
    assert list(lookup)[:5] == ["tags", "summary", "description", "operationId", "security"]
