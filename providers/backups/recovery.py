"""Bringing a backup back from an offsite target, and rebuilding a lost host.

Offsite copies are read through the reconciler's own connection to the target
host (``OffsiteTarget.host``), never with the source host's restricted key. A copy
is trusted only when its bytes match its ``.sha256``, checked here on the
controller after the transfer; an encrypted copy (``.age``) is then decrypted
here with the operator's identity file, which never leaves this machine (age's
authenticated encryption refuses a copy altered in any way). The plain backup is
written into the backup's ``destination`` on the host that needs it, with its
checksum file and the backup's original time as modification time, where the
host's own script restores or drills it as it would a local backup.

``recover`` is the seed's recovery procedure ("provision new server, run
deployment scripts, restore latest database backup, verify all services") as one
command: converge the host (and the hosts whose files reference it, such as the
target's ``authorized_keys``), bring the newest good copy back, restore it, run
the spec's service health checks, and report the time it took (RTO) and the age
of the data restored (RPO).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.engine import Engine, RunOptions, host_dependencies
from reconciler.errors import ReconcilerError
from reconciler.provider import HostContext
from reconciler.report import ApplyReport
from reconciler.spec import LoadedSpec
from reconciler.transport.base import Transport

from .model import Backup, OffsiteTarget

if TYPE_CHECKING:
    import pyrage


class RecoveryError(ReconcilerError):
    """A copy that cannot be found, fetched, trusted or decrypted (printed as ``error: ...``)."""


_COPY = re.compile(r"^(?P<backup>(?P<name>.+)-(?P<ts>[0-9]{8}T[0-9]{6}Z)\.(sql|tar)(\.gz|\.zst)?)"
                   r"(?P<age>\.age)?$")

# On the target: each copy of one backup with its size and whether its .sha256 verifies.
LIST_COPIES_SH = r"""
cd -- "$1" 2>/dev/null || { echo "no directory $1 on this host" >&2; exit 1; }
for f in "$2"-*; do
  [ -f "$f" ] || continue
  case $f in *.sha256) continue ;; esac
  if [ -f "$f.sha256" ] && sha256sum --quiet -c -- "$f.sha256" >/dev/null 2>&1; then s=ok
  elif [ -f "$f.sha256" ]; then s=mismatch; else s=missing; fi
  printf '%s\t%s\t%s\n' "$f" "$(stat -c %s -- "$f")" "$s"
done
exit 0
"""


@dataclass(frozen=True)
class OffsiteCopy:
    """One copy on a target: ``file`` as stored, ``backup`` the backup's own file name."""

    file: str
    backup: str
    taken: int  # epoch seconds, from the UTC timestamp in the name
    size: int
    checksum: str  # ok | mismatch | missing

    @property
    def encrypted(self) -> bool:
        return self.file.endswith(".age")

    @property
    def time(self) -> str:
        return datetime.fromtimestamp(self.taken, UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_copies(text: str, name: str) -> list[OffsiteCopy]:
    """``LIST_COPIES_SH`` output -> this backup's copies, newest first."""
    out: list[OffsiteCopy] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        m = _COPY.match(parts[0])
        if m is None or m["name"] != name:
            continue
        taken = int(datetime.strptime(m["ts"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp())
        out.append(OffsiteCopy(parts[0], m["backup"], taken, int(parts[1]), parts[2]))
    return sorted(out, key=lambda c: c.taken, reverse=True)


def target_named(backup: Backup, name: str | None) -> OffsiteTarget:
    if not backup.offsite:
        raise RecoveryError(f"backup {backup.name} has no offsite targets")
    if name is None:
        return backup.offsite[0]
    for target in backup.offsite:
        if target.name == name:
            return target
    raise RecoveryError(f"backup {backup.name} has no offsite target {name!r}; it has: "
                        + ", ".join(t.name for t in backup.offsite))


def list_copies(transport: Transport, target: OffsiteTarget, name: str) -> list[OffsiteCopy]:
    result = transport.run_script(LIST_COPIES_SH, [target.path, name], check=False)
    if not result.ok:
        raise RecoveryError(f"listing the copies on target {target.name} failed: "
                            f"{result.err.strip() or f'exit {result.exit_code}'}")
    return parse_copies(result.out, name)


def choose_copy(copies: list[OffsiteCopy], at: int | None = None) -> OffsiteCopy:
    """The newest copy whose checksum verifies (taken at or before ``at``)."""
    eligible = [c for c in copies if at is None or c.taken <= at]
    good = [c for c in eligible if c.checksum == "ok"]
    if not good:
        seen = ", ".join(f"{c.file} ({c.checksum})" for c in eligible[:5]) or "none"
        raise RecoveryError(f"no offsite copy verifies; copies found: {seen}")
    return good[0]


def load_identities(path: Path) -> list[pyrage.x25519.Identity]:
    """The age identities (``AGE-SECRET-KEY-1...`` lines) of the operator's identity file."""
    import pyrage  # imported here: only recover and verify need it (start-up time)

    try:
        text = path.read_text()
    except OSError as exc:
        raise RecoveryError(f"cannot read the identity file {path}: {exc.strerror}") from None
    keys = [line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-KEY-")]
    if not keys:
        raise RecoveryError(f"{path} holds no age identity (an AGE-SECRET-KEY-1... line)")
    try:
        return [pyrage.x25519.Identity.from_str(k) for k in keys]
    except Exception as exc:  # pyrage raises its own error type for malformed keys
        raise RecoveryError(f"{path}: not a valid age identity ({type(exc).__name__})") from None


def fetch_copy(transport: Transport, target: OffsiteTarget, copy: OffsiteCopy,
               identity_file: Path | None) -> bytes:
    """The plain backup: the copy's bytes checked against its ``.sha256`` here, then
    decrypted here when the copy is encrypted."""
    data = transport.read_file(posixpath.join(target.path, copy.file))
    sums = transport.read_file(posixpath.join(target.path, copy.file + ".sha256"))
    if data is None or sums is None:
        raise RecoveryError(f"{copy.file} or its checksum file vanished from target {target.name}")
    want = sums.decode(errors="replace").split()[0] if sums.strip() else ""
    if hashlib.sha256(data).hexdigest() != want:
        raise RecoveryError(f"{copy.file} from target {target.name} does not match its checksum after the "
                            "transfer; not using it")
    if not copy.encrypted:
        return data
    if identity_file is None:
        raise RecoveryError(f"{copy.file} is encrypted; give the age identity file with --identity")
    import pyrage

    try:
        plain: bytes = pyrage.decrypt(data, load_identities(identity_file))
    except pyrage.DecryptError as exc:
        raise RecoveryError(f"{copy.file} cannot be decrypted with {identity_file}: {exc}") from None
    return plain


def place_backup(transport: Transport, backup: Backup, copy: OffsiteCopy, data: bytes) -> None:
    """Write the plain backup and its checksum into ``destination`` on a host, dated
    when it was taken (the script lists, restores and prunes it like its own)."""
    dest = posixpath.normpath(backup.destination)
    digest = hashlib.sha256(data).hexdigest()
    transport.run(["sh", "-c", 'umask 077 && mkdir -p -- "$1"', "reconciler", dest])
    transport.write_file(posixpath.join(dest, copy.backup + ".sha256"),
                         f"{digest}  {copy.backup}\n".encode(), mode="0600")
    transport.write_file(posixpath.join(dest, copy.backup), data, mode="0600")
    stamp = f"@{copy.taken}"
    transport.run(["touch", "-d", stamp, "--", posixpath.join(dest, copy.backup),
                   posixpath.join(dest, copy.backup + ".sha256")])


def converge(spec: LoadedSpec, host: str, say: Callable[[str], None]) -> ApplyReport:
    """``reconcile apply`` for ``host`` and the hosts whose resources reference it."""
    dependents = sorted(h for h, deps in host_dependencies(spec).items() if host in deps)
    hosts = [host, *dependents]
    say(f"converging {', '.join(hosts)}")
    with Engine(spec, RunOptions(hosts=hosts)) as engine:
        plan = engine.plan(lock=True)
        failed = [h for h in plan.hosts if h.error]
        if failed:
            raise RecoveryError("; ".join(f"host {h.host}: {h.error}" for h in failed))
        report = engine.apply()
    return report


def run_health_checks(spec: LoadedSpec, host: str, transport: Transport) -> list[str]:
    """The ``health`` of every service of ``host``, as ``reconcile apply`` checks it
    after a start; the failures' messages (empty: all passed)."""
    from ..services.health import wait_healthy
    from ..services.model import Service

    ctx = HostContext(host, transport, spec.host_vars(host))
    failures: list[str] = []
    for entry in spec.entries_for(host):
        if entry.kind != "services":
            continue
        service = spec.resource_for_host(entry, host)
        assert isinstance(service, Service)
        if service.health is None:
            continue
        try:
            wait_healthy(ctx, service)
        except ReconcilerError as exc:
            failures.append(f"{entry.address}: {exc}")
    return failures


@dataclass(frozen=True)
class RecoveryReport:
    host: str
    target: str
    copy: OffsiteCopy
    seconds: float  # from the start of the command to the last health check: the RTO achieved
    data_age: float  # seconds between the backup and the restore: the RPO achieved
    health_failures: list[str]


def seconds_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def now() -> float:
    return time.time()
