"""The API's route table with each route's permission, for docs and the access tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from crm_api.accounts.permissions import Permission
from crm_api.platform.deps import required_permission

# Routes that answer without a login; every other /api/v1 route carries `Authorize`
# (`crm_api.platform.deps`).
PUBLIC_ROUTES = {
    ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/health/ready"),  # a load balancer's readiness probe carries no login
}


@dataclass(frozen=True, slots=True)
class RouteInfo:
    method: str
    path: str
    permission: Permission | None  # None: public


def _contexts(routes: list[Any]) -> list[Any]:
    found = []
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            found.extend(route.effective_route_contexts())
    return found


def route_table(app: FastAPI, prefix: str = "/api/v1") -> list[RouteInfo]:
    table = []
    for ctx in _contexts(app.router.routes):
        if not ctx.path.startswith(prefix) or ctx.dependant is None:
            continue
        for method in sorted(ctx.methods or ()):
            table.append(RouteInfo(method, ctx.path, required_permission(ctx.dependant)))
    return table
