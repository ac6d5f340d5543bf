"""``systemd-analyze security`` scores of units: as the host runs them now, and as they
will be once a planned unit file or drop-in is installed.

systemd >= 250 scores a unit file that is not installed (``--offline=yes PATH``); a unit
file in a scratch directory is read together with the drop-ins the host already has for
that name (``/etc/systemd/system/NAME.service.d``), and a drop-in in the scratch
directory shadows an installed one of the same file name, so the offline score is the
score the unit will have. Offline analysis does not infer ``PrivateMounts=`` from the
other mount settings as the running manager does (it scores 0.2 higher), so a planned
unit that implies a mount namespace is scored with ``PrivateMounts=yes`` added in a
scoring-only drop-in; the score then matches what the scanner says once it runs.

Scores are text such as ``"1.1 OK"`` (exposure 0.0-10.0 and systemd's word for it:
PERFECT, SAFE, OK, MEDIUM, EXPOSED, UNSAFE, DANGEROUS), what an operator reads in
``systemd-analyze security``. A host without systemd-analyze, or with one too old for
``--offline``, simply has no score.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.errors import TransportError
from reconciler.transport.base import Transport

# stdin: a tar archive of planned files (UNIT for a whole unit, UNIT.d/FILE.conf for a
# drop-in). Arguments: "planned:UNIT" scores the archive's UNIT file; "dropin:UNIT"
# scores the unit file the host loads (its FragmentPath) with the archive's drop-ins
# for it; "live:UNIT" scores the loaded unit through the manager. Prints one
# "@@exposure ARG SCORE WORD" line per argument (nothing after ARG when unknown).
SCORE_SCRIPT = r"""
set -u
dir=$(mktemp -d /tmp/reconciler-security.XXXXXXXX) || exit 1
trap 'rm -rf -- "$dir"' EXIT
tar -x -C "$dir" -f - || exit 1
cd / || exit 1
pattern='s/.*Overall exposure level for [^:]*: \([0-9.][0-9.]*\) \([A-Z][A-Z]*\).*/\1 \2/p'
score() { sed -n "$pattern" | tail -n 1; }
offline() { timeout 60 systemd-analyze security --offline=yes --no-pager -- "$1" 2>&1 | score; }
for arg do
  unit=${arg#*:}; out=
  if command -v systemd-analyze >/dev/null 2>&1; then
    case $arg in
      planned:*) out=$(offline "$dir/$unit") ;;
      dropin:*) frag=$(systemctl show -p FragmentPath --value -- "$unit" 2>/dev/null)
                if [ -n "$frag" ] && [ -f "$frag" ]; then
                  cp -- "$frag" "$dir/$unit"
                  out=$(offline "$dir/$unit")
                fi ;;
      live:*) if [ "$(systemctl show -p LoadState --value -- "$unit" 2>/dev/null)" = loaded ]; then
                out=$(timeout 60 systemd-analyze security --no-pager -- "$unit" 2>&1 | score)
              fi ;;
    esac
  fi
  printf '@@exposure %s %s\n' "$arg" "$out"
done
"""

# Settings that make systemd give the service its own mount namespace, which the
# running manager reports as PrivateMounts=yes.
_MOUNT_NAMESPACE = re.compile(
    r"^\s*(PrivateMounts=|ProtectSystem=(yes|true|full|strict)\s*$|ProtectHome=(yes|true|read-only|tmpfs)\s*$"
    r"|PrivateTmp=(yes|true)\s*$|PrivateDevices=(yes|true)\s*$|ProtectKernelTunables=(yes|true)\s*$"
    r"|ProtectKernelModules=(yes|true)\s*$|ProtectKernelLogs=(yes|true)\s*$|ProtectControlGroups=(yes|true)\s*$"
    r"|ProtectProc=|ProcSubset=|ReadWritePaths=|ReadOnlyPaths=|InaccessiblePaths=|BindPaths=|BindReadOnlyPaths="
    r"|TemporaryFileSystem=)", re.MULTILINE)
SCORING_DROPIN = "zz-reconciler-scoring.conf"


def _implies_private_mounts(unit_text: str) -> bool:
    return "PrivateMounts=" not in unit_text and _MOUNT_NAMESPACE.search(unit_text) is not None


_LINE = re.compile(r"^@@exposure (\S+) (\d+(?:\.\d+)?) ([A-Z]+)\s*$")


@dataclass(frozen=True)
class Scores:
    """Scores by unit name: before (as loaded now) and after (with the planned files)."""

    before: Mapping[str, str]
    after: Mapping[str, str]


def parse_scores(text: str) -> dict[str, str]:
    """``SCORE_SCRIPT`` output -> {"planned:UNIT" | "dropin:UNIT" | "live:UNIT": "1.1 OK"}."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            found[match.group(1)] = f"{float(match.group(2)):.1f} {match.group(3)}"
    return found


def archive(files: Mapping[str, str]) -> bytes:
    """A tar archive of relative path -> text (directories are created as needed)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        made: set[str] = set()
        for name, text in files.items():
            parent = name.rpartition("/")[0]
            if parent and parent not in made:
                info = tarfile.TarInfo(parent)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                made.add(parent)
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def measure(transport: Transport, *, units: Mapping[str, str] | None = None,
            dropins: Mapping[str, Mapping[str, str]] | None = None,
            live: Sequence[str] = ()) -> Scores:
    """One remote command: the planned score of each unit in ``units`` (unit name -> the
    full unit text) and of each unit in ``dropins`` (unit name -> {drop-in file name:
    text}, on top of the unit file the host loads), and the current score of each unit
    in ``live``. A unit missing from the result has no score (no systemd-analyze, unit
    not loaded, analysis failed); a transport error gives no scores at all, since a
    score only informs a plan and must never fail one."""
    files = dict(units or {})
    files.update({f"{unit}.d/{SCORING_DROPIN}": "[Service]\nPrivateMounts=yes\n"
                  for unit, text in (units or {}).items() if _implies_private_mounts(text)})
    for unit, parts in (dropins or {}).items():
        files.update({f"{unit}.d/{name}": text for name, text in parts.items()})
    args = [f"planned:{u}" for u in units or {}] + [f"dropin:{u}" for u in dropins or {}]
    args += [f"live:{u}" for u in live]
    if not args:
        return Scores({}, {})
    try:
        result = transport.run_script(SCORE_SCRIPT, args, stdin=archive(files), check=False, timeout=300)
    except TransportError:
        return Scores({}, {})
    found = parse_scores(result.out)
    after = {arg.split(":", 1)[1]: score for arg, score in found.items() if not arg.startswith("live:")}
    before = {arg.split(":", 1)[1]: score for arg, score in found.items() if arg.startswith("live:")}
    return Scores(before, after)
