"""`callcard`: run the product, its parts, and its chores."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from collections.abc import Coroutine
from typing import Any

from crm_api.platform.logs import configure_logging
from crm_api.platform.settings import Settings


def _run_on_uvloop(main: Coroutine[Any, Any, None]) -> None:
    """Runs a long-lived process on uvloop, as uvicorn runs the API: each socket operation
    and wakeup costs less CPU than on asyncio's own loop, and these processes do little else."""
    try:
        import uvloop
    except ImportError:  # a platform uvloop does not build on
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


async def _seed(settings: Settings) -> None:
    from crm_api.platform.db.session import make_engine, make_sessionmaker
    from crm_api.seed import seed_demo

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            made = await seed_demo(session)
            await session.commit()
    finally:
        await engine.dispose()
    if made is None:
        print("The database already has users; demo data not added.")
        return
    print("Demo users (username / password / role):")
    for user in made:
        print(f"  {user.username:<11} {user.password:<18} {user.role}")


async def _create_user(settings: Settings, args: argparse.Namespace) -> None:
    from crm_api.accounts.models import Role
    from crm_api.accounts.service import MIN_PASSWORD_LENGTH, create_user
    from crm_api.platform.db.session import make_engine, make_sessionmaker

    password = args.password or getpass.getpass("Password: ")
    if len(password) < MIN_PASSWORD_LENGTH:
        sys.exit(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            user = await create_user(
                session,
                username=args.username,
                password=password,
                full_name=args.full_name or args.username,
                role=Role(args.role),
                extension=args.extension,
            )
            await session.commit()
            print(f"Created {user.role} {user.username} (#{user.id}).")
    finally:
        await engine.dispose()


def _prepare_embedded(settings: Settings) -> None:
    from crm_api.platform.db.migrate import upgrade_url

    if settings.is_sqlite:
        settings.recordings_dir.mkdir(parents=True, exist_ok=True)
        db_path = settings.database_url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            from pathlib import Path

            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    upgrade_url(settings.database_url)
    if settings.seed_demo_on_first_run and not settings.is_production:
        asyncio.run(_seed(settings))  # demo users with known passwords: never in production


def _serve(settings: Settings, *, embedded: bool) -> None:
    import uvicorn

    from crm_api.app import create_app
    from crm_api.features import enabled_features

    app = create_app(settings, features=enabled_features(settings, embedded=embedded))
    print(f"Callcard is at http://{settings.bind_host}:{settings.bind_port}/")
    # uvicorn's own lines go through the root handler too (CALLCARD_LOG_FORMAT).
    uvicorn.run(
        app,
        host=settings.bind_host,
        port=settings.bind_port,
        log_config=None,
        log_level=settings.log_level.lower(),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="callcard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="everything in one process (embedded defaults), migrates first")
    sub.add_parser("api", help="the API server alone (production: run `migrate` first)")
    sub.add_parser("migrate", help="apply the database migrations")
    sub.add_parser("seed-demo", help="demo users, clients and communications")
    sub.add_parser("sms", help="the SMPP gateway and the SMS/e-mail outbox (CALLCARD_SMPP_URL)")
    sub.add_parser(
        "telephony",
        help="the AMI adapter and FastAGI routing server, one per PBX (CALLCARD_AMI_URL)",
    )
    sub.add_parser(
        "sip",
        help="the SIP bridge: CALLCARD_SIP_WORKERS pjsua2 workers from CALLCARD_SIP_BIND on, "
        "behind Kamailio (deploy/kamailio/)",
    )
    cu = sub.add_parser("create-user", help="make a user, e.g. the first admin")
    cu.add_argument("username")
    cu.add_argument(
        "--role", default="admin", choices=["operator", "manager", "supervisor", "admin"]
    )
    cu.add_argument("--full-name")
    cu.add_argument("--extension")
    cu.add_argument("--password", help="read from the terminal when omitted")
    sim = sub.add_parser("pbx-sim", help="an AMI server replaying real Asterisk captures")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=5038)
    sim.add_argument("--user", default="crm")
    sim.add_argument("--secret", default="crmsecret")
    sim.add_argument(
        "--scenario", action="append", help="capture to generate (repeatable; default: all)"
    )
    sim.add_argument(
        "--rate",
        type=float,
        help="calls per second (0: none; default one call every 20 s, none with --fast)",
    )
    sim.add_argument("--duration", type=float, default=0.0, help="seconds (0: until stopped)")
    sim.add_argument(
        "--fast",
        action="store_true",
        help="replay at wire speed (load); default: human timing, phones ring for seconds",
    )
    sim.add_argument(
        "--agents",
        default="104,101,102,103",
        help="extensions rung in turn (default: the demo operator, then the managers)",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)

    if args.command == "run":
        _prepare_embedded(settings)
        _serve(settings, embedded=True)
    elif args.command == "api":
        _serve(settings, embedded=False)
    elif args.command == "migrate":
        from crm_api.platform.db.migrate import upgrade_url

        upgrade_url(settings.database_url)
        print("Database is up to date.")
    elif args.command == "seed-demo":
        if settings.is_production:
            sys.exit("Demo users have known passwords: not in production (CALLCARD_ENVIRONMENT).")
        asyncio.run(_seed(settings))
    elif args.command == "sms":
        from crm_api.messages.sms.process import run_sms

        _run_on_uvloop(run_sms(settings))
    elif args.command == "telephony":
        from crm_api.calls.commands import start_pbx_commands
        from crm_api.calls.standby import while_leased
        from crm_api.calls.telephony import start_telephony
        from crm_api.platform.runtime import run_headless, run_until_stopped

        if not settings.ami_url:
            sys.exit("CALLCARD_AMI_URL is not set (ami://user:secret@host:5038)")
        if settings.redis_url:
            # Two processes per PBX share a lease: the active one links to the PBX and runs
            # the API workers' commands, the other stands by.
            link = (start_telephony, start_pbx_commands)
            _run_on_uvloop(run_headless(settings, link, runner=while_leased))
        else:
            _run_on_uvloop(run_headless(settings, (start_telephony,), runner=run_until_stopped))
    elif args.command == "sip":
        import functools

        from crm_api.calls.commands import start_pbx_commands
        from crm_api.calls.sip import start_sip
        from crm_api.platform.runtime import run_headless

        if not settings.sip_bind:
            sys.exit(
                "CALLCARD_SIP_BIND is not set (host:port of the first worker, e.g. 127.0.0.1:5070)"
            )
        pool = functools.partial(start_sip, workers=settings.sip_workers)
        # With Redis, the API workers' click-to-call reaches the bridge.
        bridge = (pool, start_pbx_commands) if settings.redis_url else (pool,)
        _run_on_uvloop(run_headless(settings, bridge))
    elif args.command == "create-user":
        asyncio.run(_create_user(settings, args))
    elif args.command == "pbx-sim":
        from telephony.ami.simulator import CALL_SCENARIOS, FAST, HUMAN, serve

        rate = args.rate if args.rate is not None else (0.0 if args.fast else 0.05)
        coro = serve(
            host=args.host,
            port=args.port,
            username=args.user,
            secret=args.secret,
            scenarios=args.scenario or CALL_SCENARIOS,
            rate=rate,
            duration=args.duration,
            timing=FAST if args.fast else HUMAN,
            agents=[a for a in args.agents.split(",") if a],
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(coro)


if __name__ == "__main__":
    main()
