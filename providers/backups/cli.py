"""``reconcile backup ...``: a spec's backups by hand, offsite copies, drills and recovery.

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
* ``offsite NAME [SPEC]`` copies the newest good backup to the offsite targets now
  (what ``run`` does after each backup); exit 1 when a copy failed.
* ``verify NAME [SPEC]`` runs the restore drill of the newest backup on its host:
  restored into a throwaway PostgreSQL container (or extracted into a temporary
  directory), checked against ``verify`` in the spec, removed; exit 1 with the
  reason when it fails. ``--from-offsite TARGET`` drills the newest copy on that
  target instead (brought back through the controller, decrypted with
  ``--identity``), ``--on HOST`` runs it on another host of the spec.
* ``status NAME [SPEC]`` shows the last backup, offsite copy and drill on each host
  (exit 1 when one of them failed).
* ``recover NAME [SPEC] --host HOST [--from-offsite TARGET] [--identity FILE]``
  rebuilds a lost host: point ``HOST``'s entry in the spec at the new machine, then
  this converges it (and the hosts that reference it), brings the newest good copy
  back from the target, restores it, runs the services' health checks and prints the
  recovery time and the age of the data restored.
* ``keygen [--identity FILE]`` creates the operator's age identity file (mode 0600)
  and prints the recipient to put under ``offsite[].encrypt_to``.

Times are modification times, shown and read in UTC; a TIME without a zone is UTC.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.commands import EXIT_ERROR, EXIT_OK, add_spec_argument, connect, load_spec_or_report
from reconciler.errors import ReconcilerError
from reconciler.provider import HostContext
from reconciler.spec import LoadedSpec
from reconciler.transport.base import CommandResult, Transport

from . import recovery
from .model import Backup, OffsiteTarget
from .provider import BackupsProvider, job_for, render_script
from .status import read_status


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


def _echo(result: CommandResult, *, out_to_stderr: bool = False) -> None:
    """The script's output; with ``out_to_stderr`` its stdout too (a JSON report owns stdout)."""
    if result.out:
        (sys.stderr if out_to_stderr else sys.stdout).write(result.out)
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


def cmd_offsite(args: argparse.Namespace) -> int:
    spec = load_spec_or_report(args.path)
    if spec is None:
        return EXIT_ERROR
    failed = False
    for target in _targets(spec, args.name, args.host):
        if not target.backup.offsite:
            raise BackupCommandError(f"backup {args.name} has no offsite targets in the spec")
        with connect(spec, target.host) as transport:
            result = _run_rendered(transport, target.backup, "offsite")
        _echo(result)
        if not result.ok:
            print(f"error: host {target.host}: an offsite copy of {args.name} failed; the local backup "
                  "is kept", file=sys.stderr)
            failed = True
    return EXIT_ERROR if failed else EXIT_OK


def _bring_back(spec: LoadedSpec, backup: Backup, target_name: str | None, identity: Path | None,
                at: str | None) -> tuple[OffsiteTarget, recovery.OffsiteCopy, bytes]:
    """The newest good copy on an offsite target, fetched, checked and decrypted here."""
    target = recovery.target_named(backup, target_name)
    if target.host not in spec.hosts:
        raise BackupCommandError(f"offsite target {target.name}: host {target.host!r} is not in the spec")
    with connect(spec, target.host) as transport:
        copies = recovery.list_copies(transport, target, backup.name)
        if not copies:
            raise BackupCommandError(f"there are no copies of {backup.name} in {target.path} on host "
                                     f"{target.host}")
        copy = recovery.choose_copy(copies, None if at is None else parse_time(at))
        print(f"Fetching {copy.file} ({copy.time} UTC, {human_size(copy.size)}) from offsite target "
              f"{target.name} (host {target.host})", file=sys.stderr)
        data = recovery.fetch_copy(transport, target, copy, identity)
    return target, copy, data


def cmd_verify(args: argparse.Namespace) -> int:
    spec = load_spec_or_report(args.path)
    if spec is None:
        return EXIT_ERROR
    failed = False
    for target in _targets(spec, args.name, args.host):
        drill_host = args.on or target.host
        if drill_host not in spec.hosts:
            raise BackupCommandError(f"--on {drill_host}: no such host in the spec")
        file: list[str] = []
        if args.from_offsite is not None or args.on:
            if args.from_offsite is not None:
                _, copy, data = _bring_back(spec, target.backup, args.from_offsite, _identity(args), None)
                backup_file = copy.backup
            else:
                with connect(spec, target.host) as transport:
                    newest = _list_on(transport, target.backup)
                    if not newest:
                        raise BackupCommandError(f"there is no backup of {args.name} on host {target.host}")
                    chosen = newest[0]
                    path = f"{target.backup.destination.rstrip('/')}/{chosen.file}"
                    data = transport.read_file(path) or b""
                copy = recovery.OffsiteCopy(chosen.file, chosen.file, chosen.mtime, chosen.size,
                                            chosen.checksum)
                backup_file = chosen.file
            with connect(spec, drill_host) as transport:
                recovery.place_backup(transport, target.backup, copy, data)
            file = [backup_file]
        print(f"Restore drill of {args.name} on host {drill_host}", file=sys.stderr)
        with connect(spec, drill_host) as transport:
            result = _run_rendered(transport, target.backup, "verify", *file)
        _echo(result)
        if not result.ok:
            print(f"error: host {drill_host}: the restore drill of {args.name} FAILED", file=sys.stderr)
            failed = True
    return EXIT_ERROR if failed else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    spec = load_spec_or_report(args.path)
    if spec is None:
        return EXIT_ERROR
    report: list[dict[str, Any]] = []
    healthy = True
    for target in _targets(spec, args.name, args.host):
        with connect(spec, target.host) as transport:
            status = read_status(transport, [args.name])[args.name]
        healthy = healthy and status.healthy
        report.append({"host": target.host, **status.to_json()})
        if args.output == "text":
            print(f"Host {target.host}: backup {args.name}")
            last = status.last_backup
            print(f"  last backup:  {last.describe() if last else 'none recorded'}")
            for name in [t.name for t in target.backup.offsite] or list(status.last_offsite):
                attempt = status.last_offsite.get(name)
                print(f"  offsite {name}: {attempt.describe() if attempt else 'none recorded'}")
            print(f"  last drill:   {status.last_drill.describe() if status.last_drill else 'none recorded'}")
    if args.output == "json":
        print(json.dumps({"backup": args.name, "hosts": report}, indent=2))
    return EXIT_OK if healthy else EXIT_ERROR


def _identity(args: argparse.Namespace) -> Path | None:
    value = args.identity or os.environ.get("RECONCILER_AGE_IDENTITY")
    return Path(value).expanduser() if value else None


def cmd_recover(args: argparse.Namespace) -> int:
    started = time.monotonic()
    spec = load_spec_or_report(args.path)
    if spec is None:
        return EXIT_ERROR
    [target] = _targets(spec, args.name, [args.host])

    def say(text: str) -> None:
        print(f"[{recovery.seconds_text(time.monotonic() - started):>10}] {text}", file=sys.stderr)

    say(f"recovering backup {args.name} onto host {args.host} ({spec.hosts[args.host].connect})")
    report = recovery.converge(spec, args.host, say)
    for host_report in report.hosts:
        applied = sum(1 for o in host_report.outcomes if o.status.value == "applied")
        say(f"host {host_report.host}: {applied} change(s) applied"
            + ("" if host_report.ok else f"; FAILED: {host_report.error or 'see below'}"))
        for outcome in host_report.outcomes:
            if outcome.error:
                print(f"  {outcome.change.address}: {outcome.error}", file=sys.stderr)
    if not report.ok:
        raise BackupCommandError("converging failed (above); nothing was restored")
    offsite, copy, data = _bring_back(spec, target.backup, args.from_offsite, _identity(args), args.at)
    say(f"fetched and checked {copy.file}" + (" (decrypted here)" if copy.encrypted else ""))
    with connect(spec, args.host) as transport:
        recovery.place_backup(transport, target.backup, copy, data)
        result = _run_rendered(transport, target.backup, "restore", copy.backup)
        _echo(result, out_to_stderr=args.output == "json")
        if not result.ok:
            raise BackupCommandError(f"restoring {copy.backup} on host {args.host} failed (exit "
                                     f"{result.exit_code})")
        say(f"restored {copy.backup}")
        failures = recovery.run_health_checks(spec, args.host, transport)
    elapsed = time.monotonic() - started
    data_age = time.time() - copy.taken
    for failure in failures:
        print(f"  health: {failure}", file=sys.stderr)
    say("health checks " + ("FAILED" if failures else "passed"))
    summary = {"host": args.host, "backup": copy.backup, "offsite_target": offsite.name,
               "backup_time": copy.time + "Z", "recovery_seconds": round(elapsed, 1),
               "data_age_seconds": round(data_age, 1), "health_ok": not failures}
    if args.output == "json":
        print(json.dumps(summary, indent=2))
    else:
        print(f"Recovered host {args.host} from {copy.backup} (offsite target {offsite.name}).")
        print(f"  recovery time (RTO achieved): {recovery.seconds_text(elapsed)}")
        print(f"  data restored is from {copy.time} UTC, {recovery.seconds_text(data_age)} old "
              "(RPO achieved)")
        print(f"  health checks: {'passed' if not failures else f'{len(failures)} FAILED'}")
    return EXIT_ERROR if failures else EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    import pyrage

    path = Path(args.identity).expanduser()
    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise BackupCommandError(f"{path} exists; refusing to overwrite an identity") from None
    except OSError as exc:
        raise BackupCommandError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(f"# created: {datetime.now(UTC).isoformat(timespec='seconds')}\n"
                 f"# public key: {recipient}\n{identity}\n")
    print(f"Wrote the age identity {path} (keep it off the servers, and keep a copy safe).",
          file=sys.stderr)
    print(recipient)
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

    p = actions.add_parser("offsite", help="copy the newest good backup to the offsite targets now")
    _common(p)
    p.set_defaults(func=cmd_offsite)

    p = actions.add_parser("verify", help="restore drill: restore the newest backup somewhere throwaway "
                                          "and check it (exit 1 when it fails)")
    _common(p)
    p.add_argument("--from-offsite", metavar="TARGET",
                   help="drill the newest copy on this offsite target instead of the local backup")
    p.add_argument("--on", metavar="HOST", help="run the drill on this host of the spec (a drill host)")
    p.add_argument("--identity", metavar="FILE",
                   help="age identity file for encrypted copies (default: $RECONCILER_AGE_IDENTITY)")
    p.set_defaults(func=cmd_verify)

    p = actions.add_parser("status", help="the last backup, offsite copy and drill (exit 1 when one failed)")
    _common(p)
    p.add_argument("--output", choices=["text", "json"], default="text", help="output format")
    p.set_defaults(func=cmd_status)

    p = actions.add_parser("recover", help="rebuild a lost host: converge it, restore the newest offsite "
                                           "copy, check health; prints RTO and RPO achieved")
    p.add_argument("name", metavar="NAME", help="the backup's name in the spec")
    add_spec_argument(p)
    p.add_argument("--host", required=True, metavar="HOST",
                   help="the host to rebuild (its spec entry already points at the new machine)")
    p.add_argument("--from-offsite", metavar="TARGET", help="offsite target to restore from (default: first)")
    p.add_argument("--identity", metavar="FILE",
                   help="age identity file for encrypted copies (default: $RECONCILER_AGE_IDENTITY)")
    p.add_argument("--at", metavar="TIME", help="the newest copy taken at or before TIME (UTC unless zoned)")
    p.add_argument("--output", choices=["text", "json"], default="text", help="output format")
    p.set_defaults(func=cmd_recover)

    p = actions.add_parser("keygen", help="create the operator's age identity for encrypted offsite copies")
    p.add_argument("--identity", metavar="FILE", default="reconciler-backup.age",
                   help="where to write it (default: ./reconciler-backup.age; must not exist)")
    p.set_defaults(func=cmd_keygen)
