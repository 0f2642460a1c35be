"""The `backup` and `restore` sub-commands of `appliance` (argparse and the console only; the
work is in create.py, restore.py and scheduled.py)."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.backup.errors import BackupError
from appliance.config import Settings


def add_parsers(sub: Any) -> None:
    backup = sub.add_parser(
        "backup",
        help="write one archive: database, objects, config, TLS material and secrets",
        description="Back up the running box (docs/backup.md). A progress bar shows on a terminal.",
    )
    backup.add_argument("file", nargs="?", help="the archive to write (e.g. box.tar)")
    backup.add_argument(
        "--encrypt",
        action="store_true",
        help="encrypt with a passphrase (age): asked twice on a terminal, else read from stdin",
    )
    backup.add_argument(
        "--passphrase-file", default=None, help="with --encrypt: read the passphrase from here"
    )
    backup.add_argument(
        "--scheduled",
        action="store_true",
        help="what the nightly timer runs: a dated archive in backup.directory, keeping the "
        "newest backup.keep",
    )
    restore = sub.add_parser(
        "restore",
        help="restore an archive into an empty data dir (checked completely first)",
        description="Restore a backup (docs/backup.md). The whole archive is checked before "
        "anything is written.",
    )
    restore.add_argument("file", help="the archive to restore")
    restore.add_argument(
        "--force",
        action="store_true",
        help="restore into a data dir that is not empty (its database, config and secrets "
        "are replaced)",
    )
    restore.add_argument(
        "--passphrase-file",
        default=None,
        help="for an encrypted archive: read the passphrase from here (else asked, or stdin)",
    )


def _ask(confirm: bool) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Backup passphrase: ")
    if confirm and getpass.getpass("Backup passphrase again: ") != first:
        raise BackupError("the two passphrases differ")
    return first


def _passphrase(args: argparse.Namespace, *, confirm: bool) -> str:
    from appliance.backup.scheduled import read_passphrase_file

    if args.passphrase_file:
        return read_passphrase_file(Path(args.passphrase_file))
    passphrase = _ask(confirm)
    if not passphrase:
        raise BackupError("no passphrase given")
    return passphrase


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"


def run_backup(args: argparse.Namespace, settings: Settings) -> int:
    from appliance.backup import scheduled
    from appliance.backup.create import write_backup
    from appliance.backup.crypto import check_new_passphrase
    from appliance.backup.progress import for_terminal

    if args.scheduled == bool(args.file):
        raise BackupError("give either FILE or --scheduled")
    if args.scheduled and (args.encrypt or args.passphrase_file):
        raise BackupError("--scheduled takes its passphrase from backup.passphrase_file")
    if args.passphrase_file and not args.encrypt:
        raise BackupError("--passphrase-file goes with --encrypt")
    progress = for_terminal()
    if args.scheduled:
        written = scheduled.run(settings, progress)
    else:
        passphrase = None
        if args.encrypt:
            passphrase = _passphrase(args, confirm=True)
            check_new_passphrase(passphrase)
        written = write_backup(settings, Path(args.file), passphrase=passphrase, progress=progress)
    objects = sum(1 for m in written.manifest.members if m.kind == "object")
    print(
        f"backup written: {written.path} ({_size(written.size)}, {objects} objects, "
        f"{written.seconds:.1f} s)"
    )
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from appliance.backup.progress import for_terminal
    from appliance.backup.restore import restore_archive

    data_dir = Path(args.data_dir)
    config_path = Path(args.config) if args.config else None
    result = restore_archive(
        Path(args.file),
        data_dir,
        config_path,
        force=args.force,
        passphrase=lambda: _passphrase(args, confirm=False),
        progress=for_terminal(),
    )
    print(
        f"restored {args.file} into {data_dir.resolve()}: {result.files} files, "
        f"{result.objects} objects ({_size(result.bytes)}) in {result.seconds:.1f} s"
    )
    return 0


def run(args: argparse.Namespace, load: Callable[[argparse.Namespace], Settings]) -> int:
    """`appliance backup` / `appliance restore`: exit 0, or 1 with one line on stderr."""
    try:
        if args.command == "restore":
            return run_restore(args)
        settings = load(args)
        from appliance.observability.logs import configure_logging

        logs = settings.config.logging
        configure_logging(logs.format, args.log_level or logs.level, service=args.command)
        return run_backup(args, settings)
    except BackupError as exc:
        print(f"appliance: {exc.message}", file=sys.stderr)
        return 1
