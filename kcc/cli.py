"""`kcc`: run the service, the demo, and manage agents."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from aiohttp import web

from adapters.telegram import cli as telegram_cli
from agents.registry import AgentError, add_agent, parse_skills
from kcc.settings import Settings

# No client address: for residents on the web form an IP address is personal data (AVG).
ACCESS_LOG = '"%r" %s %b %Tfs'


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        data_dir=Path(args.data_dir) if args.data_dir else None,
        config_dir=Path(args.config_dir) if args.config_dir else None,
        database_url=args.database_url,
        redis_url=args.redis_url,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data directory (KCC_DATA_DIR, default ./data)")
    parser.add_argument("--config-dir", help="configuration directory (KCC_CONFIG_DIR)")
    parser.add_argument(
        "--database-url",
        help="database URL (KCC_DATABASE_URL; default SQLite in the data directory)",
    )
    parser.add_argument(
        "--redis-url",
        help="Redis URL for shared queues (KCC_REDIS_URL; default the embedded in-process backend)",
    )


def _configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Access logs carry paths with references but never bodies; keep them at INFO.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO, and a Bot API URL carries the bot token; at DEBUG
    # python-telegram-bot logs whole updates (residents' messages).
    for name in ("httpx", "httpcore", "telegram"):
        logging.getLogger(name).setLevel(logging.WARNING)


def serve(args: argparse.Namespace) -> int:
    from kcc.app import create_app
    from kcc.services import Services

    settings = _settings(args)
    _configure_logging(args.verbose)

    async def make() -> web.Application:
        services = await Services.build(settings)
        return create_app(services)

    web.run_app(make(), host=settings.host, port=settings.port, access_log_format=ACCESS_LOG)
    return 0


def read_password(prompt: str = "password for the desk: ") -> str:
    """From the terminal without echo, or one line on standard input (scripts): never as a
    command-line argument, where other users and the shell history would see it."""
    import getpass

    from desk.passwords import check_policy

    if sys.stdin.isatty():
        password = getpass.getpass(prompt)
        if getpass.getpass("again: ") != password:
            raise ValueError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    check_policy(password)
    return password


async def _add_agent(args: argparse.Namespace) -> int:
    from kcc.clock import SystemClock
    from kcc.services import Services

    password = read_password() if args.password else None
    services = await Services.build(_settings(args))
    try:
        skills = parse_skills(args.skills) if args.skills is not None else None
        capacity = (
            {k: int(v) for k, v in parse_skills(args.capacity.replace("=", ":")).items()}
            if args.capacity
            else None
        )
        agent, token = await add_agent(
            services.store,
            services.config,
            SystemClock(),
            args.name,
            args.role,
            skills,
            capacity,
        )
        if password is not None:
            from desk.passwords import hash_async
            from desk.sessions import desk_store

            await desk_store(services).set_password_hash(agent.id or 0, await hash_async(password))
    except AgentError as error:
        print(f"kcc: {error}", file=sys.stderr)
        return 2
    finally:
        await services.close()
    print(f"agent {agent.id} {agent.name} ({agent.role}) created; its API token (shown once):")
    print(token)
    return 0


async def _set_password(args: argparse.Namespace) -> int:
    from desk.passwords import hash_async
    from desk.sessions import desk_store
    from kcc.services import Services

    password = read_password()
    services = await Services.build(_settings(args))
    try:
        store = desk_store(services)
        agent = await store.agent_by_name(args.name)
        if agent is None or agent.id is None:
            print(f"kcc: no active agent named {args.name!r}", file=sys.stderr)
            return 2
        await store.set_password_hash(agent.id, await hash_async(password))
    finally:
        await services.close()
    print(f"password set for agent {agent.id}; their open desk sessions were ended")
    return 0


def agents_set_password(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_set_password(args))
    except ValueError as error:
        print(f"kcc: {error}", file=sys.stderr)
        return 2


def agents_add(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_add_agent(args))
    except Exception as error:  # e.g. the name is taken: a clear line, not a traceback
        print(
            f"kcc: could not add the agent: {type(error).__name__}: {error}".splitlines()[0],
            file=sys.stderr,
        )
        return 1


def migrate(args: argparse.Namespace) -> int:
    from contacts.schema import upgrade_sync

    upgrade_sync(_settings(args).effective_database_url)
    print("database is at the newest schema")
    return 0


def demo(args: argparse.Namespace) -> int:
    from kcc.demo import run_demo

    settings = _settings(args)
    if not args.data_dir:
        settings = Settings(**{**settings.__dict__, "data_dir": Path("data/demo")})
    _configure_logging(args.verbose)
    return asyncio.run(
        run_demo(
            settings,
            minutes=args.minutes,
            port=args.port or 8080,
            agents=args.agents,
            rate=args.rate,
        )
    )


async def _report_norms(args: argparse.Namespace) -> int:
    from datetime import date

    from kcc.clock import SystemClock
    from kcc.services import Services
    from sla.report import as_table, norm_report

    try:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError:
        print("kcc: give --from and --to as YYYY-MM-DD", file=sys.stderr)
        return 2
    services = await Services.build(_settings(args))
    try:
        rows = await norm_report(
            services.store.readers, services.sla.book, start, end, SystemClock().now()
        )
    finally:
        await services.close()
    print(f"Normen {start.isoformat()} t/m {end.isoformat()}")
    print(as_table(rows))
    return 0


def report_norms(args: argparse.Namespace) -> int:
    return asyncio.run(_report_norms(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kcc", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p_serve = commands.add_parser("serve", help="run the service")
    _common(p_serve)
    p_serve.add_argument("--host", help="listen address (KCC_HOST, default 127.0.0.1)")
    p_serve.add_argument("--port", type=int, help="port (KCC_PORT, default 8080)")
    p_serve.add_argument("-v", "--verbose", action="store_true")
    p_serve.set_defaults(func=serve)

    p_demo = commands.add_parser("demo", help="the service with simulated residents and agents")
    _common(p_demo)
    p_demo.add_argument("--port", type=int, default=8080)
    p_demo.add_argument(
        "--minutes",
        type=float,
        default=0,
        help="stop after this many minutes (0: run until Ctrl-C)",
    )
    p_demo.add_argument("--agents", type=int, default=8, help="simulated agents")
    p_demo.add_argument("--rate", type=float, default=2.0, help="new contacts per second")
    p_demo.add_argument("-v", "--verbose", action="store_true")
    p_demo.set_defaults(func=demo)

    p_migrate = commands.add_parser("migrate", help="bring the database to the newest schema")
    _common(p_migrate)
    p_migrate.set_defaults(func=migrate)

    p_agents = commands.add_parser("agents", help="manage agents")
    agent_commands = p_agents.add_subparsers(dest="agents_command", required=True)
    p_add = agent_commands.add_parser("add", help="add an agent and print its API token")
    _common(p_add)
    p_add.add_argument("--name", required=True)
    p_add.add_argument(
        "--skills", help="comma-separated, with optional level: burgerzaken:3,nl,en:2,written,phone"
    )
    p_add.add_argument("--capacity", help="per channel kind: phone=1,chat=3,written=5")
    p_add.add_argument(
        "--role", default="agent", choices=["agent", "teamlead", "admin", "integration", "editor"]
    )
    p_add.add_argument(
        "--password",
        action="store_true",
        help="also set a password for the desk (asked for, or one line on standard input)",
    )
    p_add.set_defaults(func=agents_add)

    p_password = agent_commands.add_parser(
        "set-password",
        help="set an agent's desk password (asked for, or one line on standard input)",
    )
    _common(p_password)
    p_password.add_argument("--name", required=True)
    p_password.set_defaults(func=agents_set_password)

    p_report = commands.add_parser("report", help="reports")
    report_commands = p_report.add_subparsers(dest="report_command", required=True)
    p_norms = report_commands.add_parser(
        "norms", help="per channel and norm: contacts, within the norm, realisatie vs target"
    )
    _common(p_norms)
    p_norms.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
    p_norms.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD")
    p_norms.set_defaults(func=report_norms)

    telegram_cli.add_commands(commands)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
