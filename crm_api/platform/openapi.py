"""The OpenAPI document says what the API really answers: every error leaves as
`ErrorResponse` (not FastAPI's `HTTPValidationError`), a route behind a login may answer
403, and any route 400, 401, 404,
409, 413, 422 or 503. It also carries what `/ws` sends, the component `Frame` (one model
per frame type, told apart by `type`), which no HTTP route answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from starlette.routing import BaseRoute

from crm_api.platform.schemas import ErrorResponse

_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_ANY_ROUTE = {
    "400": "the body cannot be parsed",
    "401": "not logged in (or wrong credentials)",
    "404": "not found (or not yours to see)",
    "409": "conflicts with the current state",
    "413": "request body too large",
    "422": "invalid input",
    "503": "a backend is unavailable (the PBX, the database)",
}
_LOGGED_IN = {"403": "not allowed for this role"}
_COMPONENT = "#/components/schemas/{model}"


def _with_frames(components: dict[str, Any], frames: TypeAdapter[Any]) -> None:
    union = frames.json_schema(mode="serialization", ref_template=_COMPONENT)
    for name, sub in union.pop("$defs", {}).items():
        components.setdefault(name, sub)  # a model the HTTP side shows too is the same one
    components["Frame"] = {"description": "A frame of the /ws socket.", **union}


def _documented(schema: dict[str, Any], frames: TypeAdapter[Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _with_frames(components, frames)
    for name, sub in (
        ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        .pop("$defs", {})
        .items()
    ):
        components[name] = sub
    components["ErrorResponse"] = ErrorResponse.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components["ErrorResponse"].pop("$defs", None)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            errors = dict(_ANY_ROUTE)
            if operation.get("security"):
                errors.update(_LOGGED_IN)
            responses = operation.setdefault("responses", {})
            for status, description in errors.items():
                responses[status] = {
                    "description": description,
                    "content": {"application/json": {"schema": _REF}},
                }
    return schema


def install(
    app: FastAPI, frames: TypeAdapter[Any], routes: Callable[[], Sequence[BaseRoute]]
) -> None:
    """`frames`: of the union of every frame model (`crm_api.frames.Frame`); `routes`:
    what the document lists, in its order (the app matches a request in another)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _documented(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    routes=routes(),
                    description=app.description,
                ),
                frames,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
