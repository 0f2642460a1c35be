"""The `appliance` command: one entry point for every service and admin task."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import shutil
import sys
from pathlib import Path

from appliance import __version__
from appliance.config import Settings
from appliance.errors import AppError, ConfigError, ErrorCode

DEFAULT_DATA_DIR = "./data"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="Self-hosted chat, presence, file sharing and calls on one box.",
    )
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("APPLIANCE_DATA_DIR", DEFAULT_DATA_DIR),
        help="where the config, database and objects live (default: %(default)s)",
    )
    parser.add_argument(
        "--config", default=None, help="config file (default: <data-dir>/appliance.toml)"
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["debug", "info", "warning", "error"],
        help="overrides [logging] level of the config (default: info)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", help="create the data dir: config with fresh secrets, database")
    sub.add_parser("up", help="run every service in the foreground under supervisord")

    web = sub.add_parser("web", help="run the web service (HTTP API, Socket.IO, web UI)")
    web.add_argument("--host", default=None, help="address to bind (default: config web.host)")
    web.add_argument("--port", type=int, default=None, help="port (default: config web.port)")

    recorder = sub.add_parser(
        "recorder", help="run the call recorder (a Socket.IO client of the web service)"
    )
    recorder.add_argument(
        "--web-url",
        default=None,
        help="how to reach web (default: config recording.web_url, else http://127.0.0.1:<web.port>)",
    )

    sub.add_parser("turn", help="run the TURN/STUN relay (coturn) with a rendered config")
    sub.add_parser("store", help="run the managed S3 object store over <data-dir>/objects")

    user = sub.add_parser("user", help="manage user accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_sub.add_parser(
        "add",
        help="add a user; the password is read from stdin when it is not a terminal",
    )
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="make the user an administrator")
    passwd = user_sub.add_parser(
        "passwd",
        help="set a user's password (read like `add`); ends all their logins",
    )
    passwd.add_argument("name")
    user_sub.add_parser("list", help="list the accounts (deleted ones left out)")

    from appliance.doctor.command import add_parser as add_doctor_parser

    add_doctor_parser(sub)
    from appliance.backup.command import add_parsers as add_backup_parsers

    add_backup_parsers(sub)
    units = sub.add_parser("units", help="render the systemd units from the service declaration")
    units.add_argument("--output", default="systemd", help="folder to write (default: systemd)")
    units.add_argument(
        "--check", action="store_true", help="exit 1 if the folder differs from the rendering"
    )
    return parser


def _settings(args: argparse.Namespace, *, create: bool = True) -> Settings:
    from appliance.bootstrap import init_data_dir
    from appliance.config import load

    data_dir = Path(args.data_dir).resolve()
    config_path = Path(args.config).resolve() if args.config else None
    if create:
        settings, created = init_data_dir(data_dir, config_path)
        if created:
            print(f"initialised {data_dir}", file=sys.stderr)
    else:
        settings = load(data_dir, config_path)
    _configure_logs(args, settings)
    return settings


def _configure_logs(args: argparse.Namespace, settings: Settings) -> None:
    """`[logging]` of the config from here on (`--log-level` wins over its level)."""
    from appliance.observability.logs import configure_logging

    logs = settings.config.logging
    level = getattr(args, "log_level", None) or logs.level
    configure_logging(logs.format, level, service=str(getattr(args, "command", "")))


def _read_password() -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    second = getpass.getpass("Password again: ")
    if first != second:
        raise AppError(ErrorCode.INVALID_REQUEST, "the two passwords differ")
    return first


async def _add_user(
    settings: Settings, name: str, password: str, admin: bool, action: str = "add"
) -> int:
    from appliance.services.auth import AuthService
    from appliance.services.clock import wall_clock
    from appliance.services.passwords import PasswordService
    from appliance.services.throttle import LoginThrottle, MemoryAttemptStore
    from appliance.services.tokens import TokenCodec
    from appliance.storage.database import Database
    from appliance.storage.tokens import TokenRepository
    from appliance.storage.users import UserRepository

    config = settings.config
    db = Database(
        settings.database_path, synchronous=config.database.synchronous, batch_writer=False
    )
    await db.start()
    try:
        auth = AuthService(
            config.auth,
            UserRepository(db),
            TokenRepository(db),
            PasswordService(),
            TokenCodec(config.auth, wall_clock),
            LoginThrottle(config.auth, MemoryAttemptStore(), wall_clock),
            wall_clock,
        )
        if action == "list":
            for found in await UserRepository(db).list_all():
                flags = ("admin " if found.is_admin else "") + (
                    "disabled" if found.disabled else ""
                )
                print(f"{found.id}\t{found.username}\t{flags.strip()}")
            return 0
        if action == "passwd":
            existing = await UserRepository(db).by_username(name)
            if existing is None:
                raise AppError(ErrorCode.NOT_FOUND, f"no user {name!r}")
            await auth.set_password(existing, password, must_change=False)
            return existing.id
        user = await auth.create_user(name, password, is_admin=admin)
        return user.id
    finally:
        await db.stop()


async def _user_count(settings: Settings) -> int:
    from appliance.storage.database import Database
    from appliance.storage.users import UserRepository

    db = Database(settings.database_path, batch_writer=False)
    await db.start()
    try:
        return await UserRepository(db).count()
    finally:
        await db.stop()


def _up(settings: Settings) -> int:
    from appliance.supervision.render import supervisord_conf

    run_dir = settings.data_dir / "run"
    run_dir.mkdir(mode=0o700, exist_ok=True)
    base = [sys.executable, "-m", "appliance", "--data-dir", str(settings.data_dir)]
    base += ["--config", str(settings.config_path)]
    conf = run_dir / "supervisord.conf"
    conf.write_text(supervisord_conf(base, run_dir), encoding="utf-8")
    beside = Path(sys.executable).parent / "supervisord"
    supervisord = str(beside) if beside.is_file() else shutil.which("supervisord") or "supervisord"
    web = settings.config.web
    local = web.host in ("0.0.0.0", "::", "127.0.0.1")  # noqa: S104
    shown_host = "localhost" if local else web.host
    print(f"Appliance starting. Open http://{shown_host}:{web.port}/", flush=True)
    https = "" if web.https_port == 443 else f":{web.https_port}"
    if web.https_port:
        print(f"  over HTTPS: https://{shown_host}{https}/", flush=True)
    if web.host in ("0.0.0.0", "::"):  # noqa: S104
        from appliance.adapters.netinfo import all_addresses

        for address in all_addresses():
            shown = f"[{address}]" if ":" in address else address
            if web.https_port:
                trust = f"http://{shown}:{web.port}/trust"
                print(f"  from other devices: https://{shown}{https}/", flush=True)
                print(f"    (to trust its certificate first: {trust})", flush=True)
            else:
                print(f"  from other devices: http://{shown}:{web.port}/", flush=True)
    from appliance.bootstrap import print_setup_notice

    if not print_setup_notice(settings) and asyncio.run(_user_count(settings)) == 0:
        print(
            "No accounts yet. Create the first one in another terminal:\n"
            f"  {sys.executable} -m appliance --data-dir {settings.data_dir}"
            " user add admin --admin",
            flush=True,
        )
    os.execv(supervisord, [supervisord, "-n", "-c", str(conf)])  # noqa: S606
    return 0  # not reached


def _turn(settings: Settings, log_level: str | None = None) -> int:
    from appliance.services.turnserver import light_command

    logs = settings.config.logging
    try:
        command = asyncio.run(
            light_command(settings, log_format=logs.format, log_level=log_level or logs.level)
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"appliance: {exc}", file=sys.stderr)
        return 1
    # coturn runs as a child of a small process that has not loaded the config model (this one
    # has): it gets SIGUSR2 when the certificate files change (adapters/coturn_process.py).
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)  # noqa: S606 - the watcher replaces this process
    return 0  # not reached


def _recorder(settings: Settings, web_url: str | None) -> int:
    from appliance.recorder.service import default_web_url, serve

    asyncio.run(serve(settings, web_url or default_web_url(settings)))
    return 0


def _store(settings: Settings) -> int:
    from appliance.services.store_server import prepare

    try:
        argv, env = prepare(settings)
    except (FileNotFoundError, ValueError) as exc:
        print(f"appliance: {exc}", file=sys.stderr)
        return 1
    os.execve(argv[0], argv, env)  # noqa: S606 - the store replaces this process
    return 0  # not reached


def _units(args: argparse.Namespace) -> int:
    from appliance.supervision.render import systemd_units

    out = Path(args.output)
    rendered = systemd_units()
    if args.check:
        stale = [
            name
            for name, text in rendered.items()
            if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
        ]
        extra = (
            [p.name for p in out.glob("appliance*.*") if p.name not in rendered]
            if out.is_dir()
            else []
        )
        if stale or extra:
            print(f"systemd units out of date: {', '.join(stale + extra)}", file=sys.stderr)
            return 1
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (out / name).write_text(text, encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from appliance.observability.logs import configure_logging

    # Until the config is read (its errors are printed as they are); then as [logging] says
    # (`_settings` applies it, for every command that reads the config).
    configure_logging(level=args.log_level or "info", service=args.command)
    try:
        if args.command == "units":
            return _units(args)
        if args.command == "doctor":
            from appliance.doctor.command import run as run_doctor

            return run_doctor(args)
        if args.command in ("backup", "restore"):
            from appliance.backup.command import run as run_backup

            return run_backup(args, lambda a: _settings(a, create=False))
        settings = _settings(args)
        if args.command == "init":
            print(f"data dir ready: {settings.data_dir}")
            return 0
        if args.command == "up":
            return _up(settings)
        if args.command == "web":
            from appliance.transport.server import serve

            web = settings.config.web
            serve(settings, args.host or web.host, args.port or web.port)
            return 0
        if args.command == "turn":
            return _turn(settings, args.log_level)
        if args.command == "recorder":
            return _recorder(settings, args.web_url)
        if args.command == "store":
            return _store(settings)
        if args.command == "user" and args.user_command == "add":
            password = _read_password()
            user_id = asyncio.run(_add_user(settings, args.name, password, args.admin))
            print(f"added user {args.name} (id {user_id})")
            return 0
        if args.command == "user" and args.user_command == "passwd":
            password = _read_password()
            asyncio.run(_add_user(settings, args.name, password, False, "passwd"))
            print(f"password of {args.name} changed; their logins have ended")
            return 0
        if args.command == "user" and args.user_command == "list":
            return asyncio.run(_add_user(settings, "", "", False, "list"))
    except ConfigError as exc:
        print(f"appliance: {exc}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"appliance: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2
