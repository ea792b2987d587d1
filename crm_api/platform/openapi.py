"""The OpenAPI document says what the API really answers: every error leaves as
`ErrorResponse` (not FastAPI's `HTTPValidationError`), a route behind a login may answer
403, and any route 400, 401, 404,
409, 413, 422 or 503. It also carries what `/ws` sends, the component `Frame` (one model
per frame type, told apart by `type`), which no HTTP route answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, routing
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.models import OpenAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from starlette.routing import BaseRoute

from crm_api.platform.deps import LOGIN, required_permission
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


# The keys FastAPI puts in an operation before its security requirement.
_OPERATION_HEAD = ("tags", "summary", "description", "operationId", "deprecated")


def _with_login(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The document with the ways in (`LOGIN`) on every operation whose route carries
    `Authorize`, laid out as FastAPI lays out a route's security dependencies."""
    behind = {
        ctx.operation_id or ctx.unique_id
        for ctx in routing.iter_route_contexts(routes)
        if ctx.dependant is not None and required_permission(ctx.dependant) is not None
    }
    schemes = {
        scheme.scheme_name: jsonable_encoder(scheme.model, by_alias=True, exclude_none=True)
        for scheme in LOGIN
    }
    for path in schema.get("paths", {}).values():
        for method, operation in path.items():
            if operation.get("operationId") in behind:
                head = {k: v for k, v in operation.items() if k in _OPERATION_HEAD}
                rest = {k: v for k, v in operation.items() if k not in _OPERATION_HEAD}
                path[method] = {**head, "security": [{name: []} for name in schemes], **rest}
    if behind:
        schema.setdefault("components", {})["securitySchemes"] = schemes
    # FastAPI's own last step (through its OpenAPI model): the keys laid out as it lays them.
    return jsonable_encoder(OpenAPI(**schema), by_alias=True, exclude_none=True)  # type: ignore[no-any-return]


def _documented(
    schema: dict[str, Any], frames: TypeAdapter[Any], routes: Sequence[BaseRoute]
) -> dict[str, Any]:
    schema = _with_login(schema, routes)
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
            listed = routes()
            app.openapi_schema = _documented(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    routes=listed,
                    description=app.description,
                ),
                frames,
                listed,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
