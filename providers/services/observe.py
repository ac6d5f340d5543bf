"""Observing services: one remote script for every unit, and pure parsing of its output.

The script prints five sections: the SHA-256 of each unit file, the modification
times of the files each service reads at start (unit, environment files, restart_on
files), the content of the reconciler's environment files (base64), the services
whose last health check failed (a marker file each), and ONE ``systemctl show`` for
all units. Parsing is kept apart so it is tested on golden
output from a real host.

systemd details worth knowing here:
* ``UnitFileState`` (what ``is-enabled`` says) is not just enabled/disabled:
  ``enabled-runtime`` (enabled only until reboot, a link in /run), ``static`` (no
  [Install] section), ``masked``/``masked-runtime``, ``indirect``, ``generated``...
  Only ``enabled`` survives a reboot, so anything else differs from ``enabled``.
* ``NeedDaemonReload=yes`` means the file on disk is newer than what systemd loaded.
* ``systemctl show`` prints units in its own order, separated by blank lines; the
  ``Id=`` property names each block.
* ``--timestamp=us+utc`` (systemd >= 247) gives microsecond UTC timestamps, precise
  enough to compare with file modification times.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from reconciler.provider import State
from reconciler.sensitive import Sensitive

from .model import ENV_DIR, HEALTH_DIR, UNIT_DIR, Service, secret_env_keys
from .render import digest, parse_env_file

SHOW_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "NeedDaemonReload",
                   "DropInPaths", "ExecMainStartTimestamp", "InactiveExitTimestamp")

# Arguments: unit names (without .service), then "--", then extra files whose mtime
# matters. Names are validated ([A-Za-z0-9_.:-]), so word splitting them is safe;
# globbing is off all the same.
OBSERVE_SCRIPT = r"""
set -f
unit_dir=$1; env_dir=$2; shift 2
names=""
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do names="$names $1"; shift; done
[ "$#" -gt 0 ] && shift
echo "@@sha256"
for n in $names; do f="$unit_dir/$n.service"; [ -f "$f" ] && sha256sum -- "$f"; done
echo "@@mtime"
for n in $names; do
  for f in "$unit_dir/$n.service" "$env_dir/$n.env"; do [ -e "$f" ] && stat -c '%.6Y %n' -- "$f"; done
done
for f in "$@"; do [ -e "$f" ] && stat -c '%.6Y %n' -- "$f"; done
echo "@@env"
for n in $names; do
  f="$env_dir/$n.env"; [ -f "$f" ] && printf '%s %s\n' "$n" "$(base64 -w0 < "$f")"
done
echo "@@unhealthy"
for n in $names; do [ -e "$HEALTH_DIR/$n.unhealthy" ] && echo "$n"; done
echo "@@show"
units=""
for n in $names; do units="$units $n.service"; done
exec systemctl show --timestamp=us+utc -p "$PROPS" $units
"""


@dataclass
class Observation:
    """The parsed output of ``OBSERVE_SCRIPT``."""

    unit_digests: dict[str, str] = field(default_factory=dict)  # unit path -> sha256:...
    mtimes: dict[str, float] = field(default_factory=dict)      # path -> seconds since the epoch
    env_files: dict[str, str] = field(default_factory=dict)     # service name -> file text
    units: dict[str, dict[str, str]] = field(default_factory=dict)  # unit id -> show properties
    unhealthy: set[str] = field(default_factory=set)            # names whose last health check failed


def observe_argv(names: Sequence[str], extra_paths: Sequence[str]) -> list[str]:
    return ["env", "PROPS=" + ",".join(SHOW_PROPERTIES), f"HEALTH_DIR={HEALTH_DIR}", "sh", "-c",
            OBSERVE_SCRIPT, "reconciler", UNIT_DIR, ENV_DIR, *names, "--", *extra_paths]


def parse_systemctl_show(text: str) -> dict[str, dict[str, str]]:
    """``systemctl show`` output for several units -> ``{Id: {property: value}}``."""
    units: dict[str, dict[str, str]] = {}
    block: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if "Id" in block:
                units[block["Id"]] = block
            block = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            block[key] = value
    return units


def parse_timestamp(value: str) -> float | None:
    """``Wed 2026-11-25 18:30:16.270301 UTC`` (``--timestamp=us+utc``) -> epoch seconds.
    The weekday is skipped: it is the only locale-dependent part. Empty -> None."""
    parts = value.split()
    if len(parts) < 3:
        return None
    try:
        stamp = datetime.strptime(f"{parts[1]} {parts[2]}", "%Y-%m-%d %H:%M:%S.%f")
    except ValueError:
        try:
            stamp = datetime.strptime(f"{parts[1]} {parts[2]}", "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
    return stamp.replace(tzinfo=UTC).timestamp()


def parse_observation(text: str) -> Observation:
    obs = Observation()
    section = ""
    show_lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("@@") and line[2:] in ("sha256", "mtime", "env", "unhealthy", "show"):
            section = line[2:]
            continue
        if section == "sha256" and line:
            hexdigest, _, path = line.partition("  ")
            obs.unit_digests[path] = "sha256:" + hexdigest
        elif section == "mtime" and line:
            stamp, _, path = line.partition(" ")
            try:
                obs.mtimes[path] = float(stamp)
            except ValueError:
                continue
        elif section == "env" and line:
            name, _, encoded = line.partition(" ")
            try:
                obs.env_files[name] = base64.b64decode(encoded).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                obs.env_files[name] = ""
        elif section == "unhealthy" and line:
            obs.unhealthy.add(line.strip())
        elif section == "show":
            show_lines.append(line)
    obs.units = parse_systemctl_show("\n".join(show_lines))
    return obs


def watched_files(service: Service) -> list[str]:
    """Files whose change must restart the service (besides its unit and our env file):
    its environment_file and every ``files:`` address in restart_on."""
    paths = [service.environment_file] if service.environment_file else []
    paths += [a.split(":", 1)[1] for a in service.restart_on if a.startswith("files:")]
    return list(dict.fromkeys(paths))


def observed_environment(text: str | None, service: Service | None) -> dict[str, str]:
    """Environment as shown in plans. A value is shown only when the spec declares that
    key without a secret; every other value (secret, unknown key, prune candidate) is a
    ``Sensitive`` digest, so a plan can say it differs without saying what it is."""
    if text is None:
        return {}
    plain = set(service.environment) - secret_env_keys(service) if service is not None else set()
    return {k: v if k in plain else Sensitive(digest(v)) for k, v in parse_env_file(text).items()}


ACTIVE_STATES = ("active", "activating", "reloading", "deactivating")
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


def changed_since_start(service: Service, obs: Observation, props: Mapping[str, str]) -> list[str]:
    """Files the running process has not seen: modified after its main process started
    (so a restart that failed in an earlier run is still pending)."""
    if props.get("ActiveState") not in ACTIVE_STATES:
        return []
    started = parse_timestamp(props.get("ExecMainStartTimestamp", "")) or parse_timestamp(
        props.get("InactiveExitTimestamp", ""))
    if started is None:
        return []
    paths = [service.unit_path, *([service.env_path] if service.environment else []), *watched_files(service)]
    return sorted(p for p in dict.fromkeys(paths) if obs.mtimes.get(p, 0.0) > started)


def service_state(name: str, obs: Observation, service: Service | None) -> State | None:
    """One service's actual state, or None when its unit file is absent."""
    unit_path = f"{UNIT_DIR}/{name}.service"
    unit_digest = obs.unit_digests.get(unit_path)
    if unit_digest is None:
        return None
    props = obs.units.get(f"{name}.service", {})
    state: State = {
        "unit": unit_digest,
        "environment": observed_environment(obs.env_files.get(name), service),
        "enabled": props.get("UnitFileState", ""),
        "active": props.get("ActiveState", ""),
        "need_daemon_reload": props.get("NeedDaemonReload") == "yes",
        "drop_ins": props.get("DropInPaths", "").split(),
    }
    if service is not None:
        state["changed_since_start"] = changed_since_start(service, obs, props)
        if service.health is not None and service.state == "running":
            state["health"] = UNHEALTHY if name in obs.unhealthy else HEALTHY
    return state
