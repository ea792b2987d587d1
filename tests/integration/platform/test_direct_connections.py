"""Direct connections (`platform/db/direct.py`): statements run straight on a pooled asyncpg
connection read what the same statements read through a session, an idle connection is
checked out without awaiting, and a connection the server dropped costs one request, not
one per pooled connection."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import bindparam, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support.factories import Actor
from support.server import RunningApi

from crm_api.accounts.models import Role, User
from crm_api.clients.models import Client
from crm_api.clients.summary import BY_PHONE
from crm_api.clients.timeline.models import CommKind, Communication
from crm_api.platform.db.direct import DirectConnection, connect_direct, core_rows
from crm_api.platform.db.session import make_engine, make_read_sessionmaker
from crm_api.platform.settings import Settings

# Every kind of column a direct connection must read as SQLAlchemy does: enums, aware
# datetimes, JSON, an enum parameter, an IN list, and a value of the statement's own.
_CARDS = (
    select(
        Client.id,
        Client.kind,
        Client.created_at,
        Client.dates,
        Client.custom_fields,
        Communication.kind.label("comm_kind"),
        Communication.direction,
        Communication.occurred_at,
        Communication.details,
        User.full_name,
    )
    .outerjoin(Communication, Communication.client_id == Client.id)
    .outerjoin(User, User.id == Communication.user_id)
    .where(Client.id.in_(bindparam("ids", expanding=True)))
    .where((Communication.kind == bindparam("kind")) | Communication.id.is_(None))
    .order_by(Client.id, Communication.id)
    .limit(10)
)


async def _card_with_history(api: RunningApi, actor: Actor) -> dict:
    async with api.client(actor.token) as http:
        r = await http.post(
            "/clients",
            json={
                "name": "Орлова Вера",
                "phones": [{"number": "89161110001"}],
                "dates": [{"label": "День компании", "date": "2020-05-01"}],
            },
        )
        assert r.status_code == 201, r.text
        card = r.json()
        r = await http.post(f"/clients/{card['id']}/notes", json={"body": "перезвонить"})
        assert r.status_code == 201, r.text
        return card


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_read_connection_reads_what_a_session_reads(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    card = await _card_with_history(api, actors[Role.ADMIN])
    engine = db.kw["bind"]
    statements = [
        (BY_PHONE, {"e164": "+79161110001"}),
        (_CARDS, {"ids": [card["id"], card["id"] + 1000], "kind": CommKind.NOTE}),
        (select(func.count()).select_from(Client), {}),
    ]
    async with connect_direct(engine, make_read_sessionmaker(engine)) as conn, db() as session:
        assert isinstance(conn, DirectConnection)
        for statement, params in statements:
            raw = [tuple(row) for row in await core_rows(conn, statement, params)]
            orm = [tuple(row) for row in await core_rows(session, statement, params)]
            assert raw and raw == orm
            assert [[type(v) for v in row] for row in raw] == [
                [type(v) for v in row] for row in orm
            ]
            keys = [list(row._fields) for row in await core_rows(conn, statement, params)]
            assert keys == [
                list(row._fields) for row in await core_rows(session, statement, params)
            ]


@pytest.mark.parametrize("backend", ["postgres"])
async def test_connections_are_made_awaiting_and_an_idle_one_is_checked_out_without(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(settings.database_url)  # an empty pool
    reads = make_read_sessionmaker(engine)
    one = select(literal(1).label("one"))
    try:
        async with connect_direct(engine, reads) as first, connect_direct(engine, reads) as second:
            for conn in (first, second):
                assert [tuple(row) for row in await core_rows(conn, one, {})] == [(1,)]
        assert engine.pool.checkedin() == 2
        awaited: list[AsyncEngine] = []
        checkout = AsyncEngine.raw_connection

        async def awaiting(self: AsyncEngine) -> object:
            awaited.append(self)
            return await checkout(self)

        monkeypatch.setattr(AsyncEngine, "raw_connection", awaiting)
        async with connect_direct(engine, reads) as conn:
            assert [tuple(row) for row in await core_rows(conn, one, {})] == [(1,)]
        assert awaited == []
        assert (engine.pool.checkedin(), engine.pool.checkedout()) == (2, 0)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_dropped_server_connection_fails_one_read_only(
    api: RunningApi, actors: dict[Role, Actor], db: async_sessionmaker[AsyncSession]
) -> None:
    await _card_with_history(api, actors[Role.OPERATOR])
    lookup = ("/clients/lookup", {"phone": "8 916 111-00-01"})
    async with api.client(actors[Role.OPERATOR].token) as http:
        # Several connections in the pool at once.
        answers = await asyncio.gather(*(http.get(lookup[0], params=lookup[1]) for _ in range(6)))
        assert {r.status_code for r in answers} == {200}
        async with db() as session:  # as a server restart would: every other backend ends
            await session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        await asyncio.sleep(0.2)
        statuses = [(await http.get(lookup[0], params=lookup[1])).status_code for _ in range(4)]
    assert statuses[1:] == [200, 200, 200], statuses


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_direct_transaction_commits_at_its_end_and_leaves_nothing_of_a_failed_use(
    api: RunningApi,
    actors: dict[Role, Actor],
    db: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    """What a failed or cancelled use wrote is undone and its row locks are released (a
    connection back in the pool mid-transaction would keep both); a use that ends
    commits."""
    card = await _card_with_history(api, actors[Role.ADMIN])
    engine = db.kw["bind"]
    rename = (
        update(Client)
        .where(Client.id == bindparam("card"))
        .values(name=bindparam("new_name"))
        .returning(Client.id)
    )
    # The card is looked at through connections of its own, never one a use gave back.
    elsewhere = make_engine(settings.database_url)
    others = make_read_sessionmaker(elsewhere)

    async def renamed_elsewhere(name: str) -> str:
        """Another transaction changes the card: no lock of the use is held (a cancelled
        statement's backend sees its connection gone once the statement is over)."""
        async with others() as session, session.begin():
            await session.execute(text("SET LOCAL lock_timeout = '10s'"))
            await session.execute(rename, {"card": card["id"], "new_name": name})
        async with others() as session:
            return str(await session.scalar(select(Client.name).where(Client.id == card["id"])))

    async def stuck() -> None:
        async with connect_direct(engine, db, transaction=True) as conn:
            await core_rows(conn, rename, {"card": card["id"], "new_name": "Вторая"})
            await core_rows(conn, select(func.pg_sleep(1)), {})

    try:
        with pytest.raises(RuntimeError):
            async with connect_direct(engine, db, transaction=True) as conn:
                await core_rows(conn, rename, {"card": card["id"], "new_name": "Первая"})
                raise RuntimeError("the use fails")
        assert await renamed_elsewhere("После сбоя") == "После сбоя"
        task = asyncio.create_task(stuck())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await renamed_elsewhere("После отмены") == "После отмены"
        async with connect_direct(engine, db, transaction=True) as conn:
            await core_rows(conn, rename, {"card": card["id"], "new_name": "Третья"})
        async with others() as session:
            assert await session.scalar(select(Client.name).where(Client.id == card["id"])) == (
                "Третья"
            )
    finally:
        await elsewhere.dispose()
