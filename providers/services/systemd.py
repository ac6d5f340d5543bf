"""The systemctl / systemd-analyze commands the services provider runs on a host, and
parsing of their per-unit results.

Batch scripts print one block per unit: ``@@unit EXIT_STATUS UNIT`` then that unit's
output, so one command can report on many units and each change fails on its own.

``systemctl enable`` and ``disable`` reload the manager unless told ``--no-reload``;
the provider always says so and reloads once itself, after all of them. That reload
is needed: systemd caches a unit's ``UnitFileState`` (what ``is-enabled`` reports)
until the next reload, so without it a unit just enabled can still read "disabled".
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Mapping, Sequence

# Unit files arrive as a tar archive on stdin (no unit text in argv). Each is checked
# in the same temporary directory, so units that require each other find each other:
# verify adds the unit's directory to its search path. --recursive-errors=one fails on
# warnings (unknown keys, bad values) in the unit and its direct dependencies (a
# Requires= of a missing unit), not on noise deeper down; --man=no because servers
# rarely have the man pages a Documentation= line points at.
VERIFY_SCRIPT = r"""
set -eu
command -v systemd-analyze >/dev/null 2>&1 || {
  echo "systemd-analyze is not installed on the host (package systemd)" >&2; exit 127; }
dir=$(mktemp -d /tmp/reconciler-verify.XXXXXXXX)
trap 'rm -rf -- "$dir"' EXIT
tar -x -C "$dir" -f -
printf '@@dir %s\n' "$dir"
for unit in "$@"; do
  rc=0
  out=$(cd / && systemd-analyze verify --recursive-errors=one --man=no "$dir/$unit" 2>&1) || rc=$?
  printf '@@unit %s %s\n%s\n' "$rc" "$unit" "$out"
done
"""

# $1: "reload" to daemon-reload once at the end; then UNIT ACTION pairs, ACTION being
# enable, disable or disable-runtime (an enabled-runtime unit also has a link in /run
# that a plain disable leaves behind).
ENABLE_SCRIPT = r"""
set -u
reload=$1; shift
while [ "$#" -ge 2 ]; do
  unit=$1; action=$2; shift 2
  rc=0
  case "$action" in
    enable) out=$(systemctl enable --no-reload -- "$unit" 2>&1) || rc=$? ;;
    disable) out=$(systemctl disable --no-reload -- "$unit" 2>&1) || rc=$? ;;
    disable-runtime) out=$( { systemctl disable --runtime --no-reload -- "$unit" &&
                              systemctl disable --no-reload -- "$unit"; } 2>&1) || rc=$? ;;
    *) out="unknown action $action"; rc=2 ;;
  esac
  printf '@@unit %s %s\n%s\n' "$rc" "$unit" "$out"
done
[ "$reload" != reload ] || exec systemctl daemon-reload
"""

STOP_SCRIPT = r"""
systemctl stop -- "$1" || exit $?
systemctl reset-failed -- "$1" 2>/dev/null || true
"""

# $1 unit, $2 unit file, $3 environment file. The caller reloads once afterwards.
PRUNE_SCRIPT = r"""
set -eu
systemctl disable --now --no-reload -- "$1"
rm -f -- "$2" "$3" "$4"
systemctl reset-failed -- "$1" 2>/dev/null || true
"""


def unit_archive(units: Mapping[str, str]) -> bytes:
    """A tar archive of unit name -> text, for ``VERIFY_SCRIPT``'s stdin."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in units.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def parse_unit_results(text: str) -> dict[str, tuple[int, list[str]]]:
    """``@@unit STATUS UNIT`` blocks -> {unit: (exit status, non-empty output lines)}.
    A ``@@dir PATH`` line names a temporary directory that is cut from the output."""
    tmpdir = ""
    results: dict[str, tuple[int, list[str]]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@dir "):
            tmpdir = line[len("@@dir "):].rstrip("/") + "/"
        elif line.startswith("@@unit "):
            status, _, unit = line[len("@@unit "):].partition(" ")
            current = []
            results[unit] = (int(status) if status.isdigit() else 1, current)
        elif current is not None and line.strip():
            current.append(line.replace(tmpdir, "") if tmpdir else line)
    return results


def failures(results: Mapping[str, tuple[int, Sequence[str]]]) -> dict[str, str]:
    """{service name: its output, indented} for every unit that exited non-zero."""
    return {unit.removesuffix(".service"): "\n".join("  " + line for line in lines)
            or f"  (exit status {status}, no message)"
            for unit, (status, lines) in results.items() if status != 0}


def parse_verify_output(text: str, units: Mapping[str, str] | None = None) -> dict[str, str]:
    """``VERIFY_SCRIPT`` output -> {service name: systemd-analyze's complaint} for each
    unit it rejected. A message that points at a line of a unit in ``units`` (unit name
    -> text) quotes that line: the user wrote the spec, not the rendered file the line
    number counts in."""
    results = parse_unit_results(text)
    for _status, lines in results.values():
        quoted: list[str] = []
        for line in lines:
            quoted.append(line)
            source = _quote_line(line, units or {})
            if source:
                quoted.append(source)
        lines[:] = quoted
    return {name: f"systemd-analyze verify refused it:\n{shown}" for name, shown in failures(results).items()}


def _quote_line(message: str, units: Mapping[str, str]) -> str:
    """``app.service:12: Unknown key...`` -> ``> BogusKey=1`` (line 12 of app.service)."""
    match = re.match(r"^([^:\s]+\.service):(\d+): ", message)
    if match is None or match.group(1) not in units:
        return ""
    lines = units[match.group(1)].splitlines()
    number = int(match.group(2))
    return f"> {lines[number - 1]}" if 0 < number <= len(lines) else ""
