"""The reference of the core benchmark: the exact-lookup's own SQL statement (compiled from
`crm_api.clients.summary`) run by asyncpg behind one bare Starlette route under uvicorn,
as `callcard api` is served: no FastAPI dependencies, no sign-in, no ORM session, no
Pydantic. What one indexed SELECT over HTTP costs on this machine in this run. Run as
its own process, so its CPU is its own:

    python tests/bench/lean_api.py --dsn postgresql://... --port 8123

GET /lookup?phone=+79161234567 answers the row as JSON (404 when there is none)."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from sqlalchemy.dialects.postgresql.asyncpg import dialect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_api.clients.summary import BY_PHONE


def lookup_sql() -> tuple[str, list[str], dict[str, object]]:
    """The statement's text, its positional parameter names and their fixed values."""
    compiled = BY_PHONE.compile(dialect=dialect())
    return str(compiled), list(compiled.positiontup or ()), dict(compiled.params)


def app(dsn: str) -> Starlette:
    sql, names, values = lookup_sql()
    pool: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        pool.append(await asyncpg.create_pool(dsn, min_size=1, max_size=2))
        yield
        await pool[0].close()

    async def lookup(request: Request) -> Response:
        values["e164"] = request.query_params["phone"]
        rows = await pool[0].fetch(sql, *(values[name] for name in names))
        if not rows:
            return Response(b'{"error":"not found"}', 404, media_type="application/json")
        body = json.dumps(dict(rows[0]), default=str, ensure_ascii=False)
        return Response(body.encode(), media_type="application/json")

    return Starlette(routes=[Route("/lookup", lookup)], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app(args.dsn), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
