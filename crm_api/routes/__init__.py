"""Thin routers, one per resource: parse, call the use case, commit, notify."""

# Routes that answer without a login; every other /api/v1 route carries `Authorize`.
PUBLIC_ROUTES = {("POST", "/api/v1/auth/login"), ("GET", "/api/v1/health")}
