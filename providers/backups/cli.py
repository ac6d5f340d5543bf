"""``reconcile backup run|list|restore``: a spec's backups, by hand, over SSH.

* ``run NAME [SPEC] [--host H]`` runs the *installed* script
  ``/usr/local/lib/reconciler/backup-NAME``, the file the cron entry runs, so a
  manual run tests exactly what runs at night. It refuses when the backup is not
  installed and warns when the installed script differs from the spec.
* ``list NAME [SPEC]`` and ``restore NAME [SPEC] [--at TIME] [--into TARGET]``
  run the script *rendered from the spec* (same body, passed to ``sh -c``), so
  they also work on a rebuilt host where backups were copied back before the
  first apply. ``restore`` picks the newest backup modified at or before TIME
  (default: the newest), refuses one whose checksum does not verify, and restores
  a database dump in one transaction (``--into`` names another database, created
  when missing) or extracts a tarball (``--into`` names a directory, default ``/``).

Times are modification times, shown and read in UTC; a TIME without a zone is UTC.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.commands import EXIT_ERROR, EXIT_OK, add_spec_argument, connect, load_spec_or_report
from reconciler.errors import ReconcilerError
from reconciler.provider import HostContext
from reconciler.spec import LoadedSpec
from reconciler.transport.base import CommandResult, Transport

from .model import Backup
from .provider import BackupsProvider, job_for, render_script


class BackupCommandError(ReconcilerError):
    """A ``reconcile backup`` request that cannot be carried out (printed as ``error: ...``)."""


@dataclass(frozen=True)
class Target:
    """One host a backup applies to, with the backup as resolved for that host."""

    host: str
    backup: Backup


@dataclass(frozen=True)
class BackupFile:
    """One line of the script's ``list``."""

    file: str
    mtime: int
    size: int
    checksum: str  # ok | mismatch | missing

    @property
    def time(self) -> str:
        return datetime.fromtimestamp(self.mtime, UTC).strftime("%Y-%m-%d %H:%M:%S")

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "mtime": self.mtime, "time": self.time + "Z", "size": self.size,
                "checksum": self.checksum}


def parse_list(text: str) -> list[BackupFile]:
    """Parse ``backup-NAME list`` output (MTIME, SIZE, STATUS, FILE; newest first)."""
    out: list[BackupFile] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0].lstrip("-").isdigit() and parts[1].isdigit():
            out.append(BackupFile(parts[3], int(parts[0]), int(parts[1]), parts[2]))
    return out


def parse_time(text: str) -> int:
    """``--at`` as epoch seconds: ISO 8601 (``2024-05-01``, ``2024-05-01T02:00``, with or
    without a zone; none means UTC) or a backup timestamp ``20240501T020000Z``."""
    try:
        when = datetime.strptime(text, "%Y%m%dT%H%M%SZ")
    except ValueError:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise BackupCommandError(f"--at {text!r}: expected a time such as 2024-05-01T02:00 "
                                     "(UTC unless it has a zone) or a backup file name") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def choose_backup(backups: list[BackupFile], at: str | None) -> BackupFile:
    """The newest backup modified at or before ``at`` (or named ``at``); the newest without it."""
    if not backups:
        raise BackupCommandError("there are no backups to restore")
    if at is None:
        chosen = backups[0]
    else:
        named = [b for b in backups if b.file == at]
        if named:
            chosen = named[0]
        else:
            limit = parse_time(at)
            earlier = [b for b in backups if b.mtime <= limit]
            if not earlier:
                raise BackupCommandError(f"no backup was made at or before {at}; the oldest is "
                                         f"{backups[-1].file} ({backups[-1].time} UTC)")
            chosen = earlier[0]
    if chosen.checksum != "ok":
        raise BackupCommandError(f"{chosen.file} ({chosen.time} UTC): checksum {chosen.checksum}; "
                                 "refusing to restore it. Pick another with --at "
                                 "(see `reconcile backup list`).")
    return chosen


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # unreachable; keeps mypy sure of the return


# ------------------------------------------------------------------------------ plumbing

def _targets(spec: LoadedSpec, name: str, hosts: list[str] | None) -> list[Target]:
    entry = spec.by_address.get(f"backups:{name}")
    if entry is None:
        names = sorted(e.id for e in spec.entries if e.kind == "backups")
        raise BackupCommandError(f"the spec {spec.path} has no backup named {name!r}"
                                 + (f"; it has: {', '.join(names)}" if names else ""))
    applies = [h for h in spec.hosts if spec.applies_to(entry, h)]
    if hosts:
        unknown = [h for h in hosts if h not in spec.hosts]
        if unknown:
            raise BackupCommandError(f"unknown host(s) {', '.join(unknown)}; the spec defines "
                                     f"{', '.join(spec.hosts)}")
        outside = [h for h in hosts if h not in applies]
        if outside:
            raise BackupCommandError(f"backup {name} does not apply to host(s) {', '.join(outside)} "
                                     f"(it applies to {', '.join(applies) or 'no host'})")
        applies = [h for h in applies if h in hosts]
    targets = []
    for host in applies:
        resource = spec.resource_for_host(entry, host)
        assert isinstance(resource, Backup)
        targets.append(Target(host, resource))
    return targets


def _echo(result: CommandResult) -> None:
    if result.out:
        sys.stdout.write(result.out)
    if result.err:
        sys.stderr.write(result.err)


def _run_rendered(transport: Transport, backup: Backup, *args: str) -> CommandResult:
    """Run the script rendered from the spec (not the installed copy) with ``args``."""
    return transport.run(["sh", "-c", render_script(backup), job_for(backup.name).script_path, *args],
                         check=False, timeout=None)


def _list_on(transport: Transport, backup: Backup) -> list[BackupFile]:
    result = _run_rendered(transport, backup, "list")
    if not result.ok:
        raise BackupCommandError(f"listing backups of {backup.name} failed: "
                                 f"{result.err.strip() or f'exit {result.exit_code}'}")
    return parse_list(result.out)


# ------------------------------------------------------------------------------ commands

def cmd_run(args: argparse.Namespace) -> int:
    spec = load_spec_or_report(args.path)
    if spec is None:
        return EXIT_ERROR
    provider = BackupsProvider()
    failed = False
    for target in _targets(spec, args.name, args.host):
        with connect(spec, target.host) as transport:
            ctx = HostContext(target.host, transport, spec.host_vars(target.host))
            state = provider.observe(ctx, [target.backup.name], {target.backup.name: target.backup})
            actual = state.get(target.backup.name)
            if actual is None:
                raise BackupCommandError(f"backup {args.name} is not installed on host {target.host}; "
                                         "run `reconcile apply` first")
            if provider.compare(provider.desired(target.backup, ctx), actual):
                print(f"warning: host {target.host}: the installed backup script differs from the spec; "
                      "running the installed one (what cron runs). `reconcile apply` updates it.",
                      file=sys.stderr)
            result = transport.run([job_for(target.backup.name).script_path, "run"], check=False,
                                   timeout=None)
            _echo(result)
            if not result.ok:
                print(f"error: host {target.host}: backup {args.name} failed (exit {result.exit_code})",
                      file=sys.stderr)
                failed = True
    return EXIT_ERROR if failed else EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    spec = load_spec_or_report(args.path)
    if spec is None:
        return EXIT_ERROR
    report: list[dict[str, Any]] = []
    for target in _targets(spec, args.name, args.host):
        with connect(spec, target.host) as transport:
            backups = _list_on(transport, target.backup)
        report.append({"host": target.host, "destination": target.backup.destination,
                       "backups": [b.to_json() for b in backups]})
        if args.output == "text":
            print(f"Host {target.host}: {len(backups)} backup(s) of {args.name} "
                  f"in {target.backup.destination}")
            if backups:
                print(f"  {'MODIFIED (UTC)':<20} {'SIZE':>10}  {'CHECKSUM':<9} FILE")
            for b in backups:
                print(f"  {b.time:<20} {human_size(b.size):>10}  {b.checksum:<9} {b.file}")
    if args.output == "json":
        print(json.dumps({"backup": args.name, "hosts": report}, indent=2))
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    spec = load_spec_or_report(args.path)
    if spec is None:
        return EXIT_ERROR
    targets = _targets(spec, args.name, args.host)
    if len(targets) != 1:
        raise BackupCommandError(f"backup {args.name} is on hosts {', '.join(t.host for t in targets)}; "
                                 "choose one with --host")
    target = targets[0]
    with connect(spec, target.host) as transport:
        chosen = choose_backup(_list_on(transport, target.backup), args.at)
        print(f"Restoring {chosen.file} ({chosen.time} UTC, {human_size(chosen.size)}) on host {target.host}",
              file=sys.stderr)
        result = _run_rendered(transport, target.backup, "restore", chosen.file,
                               *([args.into] if args.into else []))
        _echo(result)
    if not result.ok:
        print(f"error: restoring {chosen.file} failed (exit {result.exit_code})", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the backup's name in the spec")
    add_spec_argument(parser)
    parser.add_argument("--host", action="append", metavar="HOST",
                        help="only this host (repeatable; default: every host the backup applies to)")


def register(subparsers: Any) -> None:
    """Add ``reconcile backup ...`` to the main parser (entry point ``reconciler.commands``)."""
    parser = subparsers.add_parser("backup", help="run, list or restore the spec's scheduled backups",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="backup_action", metavar="ACTION", required=True)

    p = actions.add_parser("run", help="take a backup now with the installed script (what cron runs)")
    _common(p)
    p.set_defaults(func=cmd_run)

    p = actions.add_parser("list", help="list backups: time, size and checksum status")
    _common(p)
    p.add_argument("--output", choices=["text", "json"], default="text", help="output format")
    p.set_defaults(func=cmd_list)

    p = actions.add_parser("restore", help="restore a backup (the newest, or the one at --at TIME)")
    _common(p)
    p.add_argument("--at", metavar="TIME",
                   help="the newest backup modified at or before TIME (UTC unless zoned), "
                        "or a backup file name")
    p.add_argument("--into", metavar="TARGET",
                   help="database to restore into (created if missing), or directory for path backups")
    p.set_defaults(func=cmd_restore)
