"""Firewall commands on the host: one observation script, and commit-confirmed changes.

Commit-confirmed, as routers do it: before a change the current rules are saved on
the host and a transient systemd timer (``reconciler-firewall-rollback.timer``,
made by ``systemd-run --on-active``) is armed to restore them. After the change the
reconciler opens a *fresh* SSH connection; only when that works does it stop the
timer. If the change cut the management path, nobody stops the timer and the host
restores the previous rules by itself, with no help from the reconciler. The
reconciler's own session survives meanwhile because established connections are
always accepted.

Files: ``/run/reconciler-firewall/`` holds the saved state and the candidate (tmpfs:
gone after a reboot, when the persisted rules load again); the confirmed nftables
rules persist as ``/etc/reconciler/firewall.nft``, loaded at boot by
``reconciler-firewall.service`` (the user's ``/etc/nftables.conf`` is never touched).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from reconciler.errors import ApplyError, ReconcilerError, TransportError
from reconciler.transport.base import Transport

from .model import ManagementPath
from .ufw import (
    RawTuple,
    UfwRule,
    UfwStatus,
    merge_families,
    parse_defaults_file,
    parse_status,
    parse_user_rules,
)

STATE_DIR = "/run/reconciler-firewall"
BOOT_RULESET = "/etc/reconciler/firewall.nft"
BOOT_UNIT_NAME = "reconciler-firewall.service"
BOOT_UNIT = f"/etc/systemd/system/{BOOT_UNIT_NAME}"
ROLLBACK_UNIT = "reconciler-firewall-rollback"
# Says that this host's ufw rules are managed (ufw has no place for a table-wide
# mark); present from the first apply even when the spec has no rules yet.
UFW_MARKER = "/etc/reconciler/firewall.ufw"
UFW_MARKER_TEXT = ("# Managed by reconciler: ufw rules whose comment starts with 'reconciler' belong to\n"
                   "# the reconciler; it adds and deletes only those.\n")

# Mirrors Debian's nftables.service (early, before the network), and runs after it
# because /etc/nftables.conf starts with `flush ruleset`, which would drop our
# table; PartOf makes a restart of nftables.service reload our table too.
BOOT_UNIT_TEXT = f"""\
# Managed by reconciler: loads the reconciler's own nftables table at boot.
[Unit]
Description=reconciler firewall (nftables table inet reconciler)
Documentation=file:{BOOT_RULESET}
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
After=nftables.service
PartOf=nftables.service
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f {BOOT_RULESET}

[Install]
WantedBy=sysinit.target
"""

_MARK = "@@reconciler-firewall:"

# Everything the provider needs, in one remote command. Read-only.
OBSERVE_SCRIPT = r"""
m=$1
echo "${m}ssh"; printf '%s\n' "${SSH_CONNECTION:-}"
set -- ${SSH_CONNECTION:-}
echo "${m}route"; if [ -n "${1:-}" ]; then ip -o route get "$1" 2>/dev/null; fi
echo "${m}nft"
if command -v nft >/dev/null 2>&1; then nft -j list table inet reconciler 2>/dev/null || echo absent
else echo missing; fi
echo "${m}boot"
for f in /etc/reconciler/firewall.nft /etc/systemd/system/reconciler-firewall.service; do
  [ -f "$f" ] && sha256sum "$f"
done
echo "enabled $(systemctl is-enabled reconciler-firewall.service 2>/dev/null)"
[ -f /etc/reconciler/firewall.ufw ] && echo "ufw-marker"
echo "${m}ufw"; if command -v ufw >/dev/null 2>&1; then ufw status verbose 2>&1; else echo missing; fi
echo "${m}ufw-default"; cat /etc/default/ufw 2>/dev/null
echo "${m}ufw4"; cat /etc/ufw/user.rules 2>/dev/null
echo "${m}ufw6"; cat /etc/ufw/user6.rules 2>/dev/null
exit 0
"""


@dataclass
class HostFacts:
    """What the observation found; kept in ``ctx.scratch`` for ``desired`` and ``apply``."""

    management: ManagementPath | None
    nft_installed: bool
    nft_listing: str | None  # `nft -j` of our table, None when it does not exist
    boot_hashes: dict[str, str]  # path -> sha256 hex
    boot_enabled: str
    ufw_marked: bool  # UFW_MARKER exists: the reconciler manages ufw rules here
    ufw_installed: bool
    ufw_status: UfwStatus
    ufw_policy: dict[str, str | None]
    ufw_ipv6: bool
    ufw_rules: list[UfwRule | RawTuple]

    @property
    def ufw_owned(self) -> list[UfwRule]:
        return [r for r in self.ufw_rules if isinstance(r, UfwRule) and r.owned]

    @property
    def ufw_unowned(self) -> list[UfwRule | RawTuple]:
        return [r for r in self.ufw_rules if not (isinstance(r, UfwRule) and r.owned)]

    @property
    def nft_present(self) -> bool:
        return self.nft_listing is not None or bool(self.boot_hashes) or self.boot_enabled == "enabled"


def _sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(_MARK):
            current = out.setdefault(line[len(_MARK):].strip(), [])
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def parse_observation(text: str) -> HostFacts:
    """Parse OBSERVE_SCRIPT's output (pure, so it is tested with golden files)."""
    s = _sections(text)
    route = s.get("route", "").split()
    interface = route[route.index("dev") + 1] if "dev" in route[:-1] else None
    management = ManagementPath.parse(s.get("ssh", "").strip(), interface)
    nft = s.get("nft", "").strip()
    boot_hashes: dict[str, str] = {}
    enabled = ""
    marked = False
    for line in s.get("boot", "").splitlines():
        fields = line.split()
        if fields == ["ufw-marker"]:
            marked = True
        elif fields and fields[0] == "enabled":
            enabled = fields[1] if len(fields) > 1 else ""
        elif len(fields) == 2:
            boot_hashes[fields[1]] = fields[0]
    ufw_text = s.get("ufw", "").strip()
    policy, ipv6 = parse_defaults_file(s.get("ufw-default", ""))
    ufw_installed = ufw_text != "missing" and bool(ufw_text)
    status = parse_status(ufw_text) if ufw_installed else UfwStatus(False)
    rules = merge_families(parse_user_rules(s.get("ufw4", ""), 4), parse_user_rules(s.get("ufw6", ""), 6),
                           ipv6) if ufw_installed else []
    return HostFacts(
        management=management, nft_installed=nft != "missing",
        nft_listing=None if nft in ("absent", "missing", "") else nft,
        boot_hashes=boot_hashes, boot_enabled=enabled, ufw_marked=marked, ufw_installed=ufw_installed,
        ufw_status=status, ufw_policy=policy, ufw_ipv6=ipv6, ufw_rules=rules)


def observe_host(transport: Transport) -> HostFacts:
    result = transport.run_script(OBSERVE_SCRIPT, [_MARK])
    return parse_observation(result.out)


# ------------------------------------------------------------------------------ changing

# Arms the rollback timer. $1 = seconds, $2 = the restore script (a constant of this
# module), which goes into a file: systemd expands $VARIABLES and %specifiers in a
# unit's command line, so the script cannot be passed there. A leftover timer from
# an interrupted run is cleared first: systemd-run refuses a name still loaded.
_ARM = r"""
rm -f "$dir/rolled-back"
printf '%s\n' "$2" > "$dir/restore.sh"
systemctl stop reconciler-firewall-rollback.timer >/dev/null 2>&1 || true
systemctl reset-failed reconciler-firewall-rollback.timer reconciler-firewall-rollback.service \
  >/dev/null 2>&1 || true
# AccuracySec: timers may otherwise fire up to a minute late.
systemd-run --quiet --unit reconciler-firewall-rollback --on-active="$1" --timer-property=AccuracySec=100ms \
  /bin/sh /run/reconciler-firewall/restore.sh
"""

# stdin: the candidate ruleset. nft checks it before anything is armed or changed;
# the current table is saved as an atomic replace (or a plain delete when absent).
NFT_APPLY_SCRIPT = r"""
set -eu
dir=/run/reconciler-firewall
mkdir -p "$dir"; chmod 700 "$dir"
cat > "$dir/candidate.nft"
nft -c -f "$dir/candidate.nft"
{ echo 'table inet reconciler'; echo 'delete table inet reconciler'
  nft list table inet reconciler 2>/dev/null || true; } > "$dir/restore.nft"
""" + _ARM + r"""
if ! nft -f "$dir/candidate.nft"; then
  systemctl stop reconciler-firewall-rollback.timer >/dev/null 2>&1 || true
  exit 3
fi
"""

NFT_RESTORE_SCRIPT = r"""
echo "reconciler: the firewall change was not confirmed; restoring the previous nftables table"
nft -f /run/reconciler-firewall/restore.nft; echo $? > /run/reconciler-firewall/rolled-back
"""

_UFW_FILES = "/etc/ufw/user.rules /etc/ufw/user6.rules /etc/default/ufw /etc/ufw/ufw.conf"

UFW_ARM_SCRIPT = r"""
set -eu
dir=/run/reconciler-firewall; b=$dir/ufw-backup
rm -rf "$b"; mkdir -p "$b"; chmod 700 "$dir"
for f in """ + _UFW_FILES + r"""; do cp -p "$f" "$b/$(echo "$f" | tr / _)"; done
if ufw status | grep -q '^Status: active'; then echo yes > "$b/active"; else echo no > "$b/active"; fi
""" + _ARM

UFW_RESTORE_SCRIPT = r"""
echo "reconciler: the firewall change was not confirmed; restoring the previous ufw rules"
b=/run/reconciler-firewall/ufw-backup
for f in """ + _UFW_FILES + r"""; do cp -p "$b/$(echo "$f" | tr / _)" "$f"; done
if [ "$(cat "$b/active")" = yes ]; then ufw reload; else ufw disable; fi
echo $? > /run/reconciler-firewall/rolled-back
"""

# stdin: one ufw command per line, arguments separated by tabs (spec values never
# contain tabs or newlines: validation refuses them). Split, never evaluated. If
# the rollback fired meanwhile, the rest is not run on top of the restored rules.
UFW_RUN_SCRIPT = r"""
set -f
tab=$(printf '\t')
while IFS= read -r line; do
  [ -n "$line" ] || continue
  if [ -e /run/reconciler-firewall/rolled-back ]; then
    echo "the confirm window ran out during the change" >&2; exit 4
  fi
  IFS=$tab; set -- $line; IFS=' '
  if ! out=$(ufw "$@" 2>&1); then printf 'ufw %s: %s\n' "$*" "$out" >&2; exit 3; fi
  printf '%s\n' "$out"
done
"""

# Stops the timer; a restore that already began is let finish, then reported.
CONFIRM_SCRIPT = r"""
systemctl stop reconciler-firewall-rollback.timer >/dev/null 2>&1 || true
i=0
while [ $i -lt 600 ]; do
  state=$(systemctl is-active reconciler-firewall-rollback.service 2>/dev/null)
  case "$state" in active|activating|deactivating|reloading) ;; *)
    systemctl list-jobs --no-legend 2>/dev/null | grep -q reconciler-firewall-rollback || break ;;
  esac
  sleep 0.1; i=$((i + 1))
done
if [ -e /run/reconciler-firewall/rolled-back ]; then echo rolled-back; else echo confirmed; fi
"""

# Runs the restore now (a change failed half-way) and disarms the timer.
RESTORE_NOW_SCRIPT = r"""
systemctl stop reconciler-firewall-rollback.timer >/dev/null 2>&1 || true
sh /run/reconciler-firewall/restore.sh
"""

WAIT_ROLLBACK_SCRIPT = r"""
end=$(( $(date +%s) + $1 ))
while [ ! -e /run/reconciler-firewall/rolled-back ] && [ "$(date +%s)" -le "$end" ]; do sleep 0.5; done
[ -e /run/reconciler-firewall/rolled-back ] && cat /run/reconciler-firewall/rolled-back
"""

PERSIST_NFT_SCRIPT = r"""
set -eu
mkdir -p /etc/reconciler
umask 022
cat > /etc/reconciler/.firewall.nft.tmp
mv -f /etc/reconciler/.firewall.nft.tmp /etc/reconciler/firewall.nft
printf '%s' "$1" > /etc/systemd/system/.reconciler-firewall.service.tmp
mv -f /etc/systemd/system/.reconciler-firewall.service.tmp /etc/systemd/system/reconciler-firewall.service
systemctl daemon-reload
systemctl enable --quiet reconciler-firewall.service
"""

REMOVE_NFT_SCRIPT = r"""
set -eu
if nft list table inet reconciler >/dev/null 2>&1; then nft delete table inet reconciler; fi
systemctl disable --quiet reconciler-firewall.service >/dev/null 2>&1 || true
rm -f /etc/systemd/system/reconciler-firewall.service /etc/reconciler/firewall.nft
systemctl daemon-reload
"""


class FirewallLockout(ApplyError):
    """The change cut new SSH logins; the host rolled it back."""


@dataclass(frozen=True)
class Guard:
    """An armed rollback (its restore script is on the host)."""

    armed_at: float  # time.monotonic() just before arming
    seconds: int


def arm_and_load_nft(transport: Transport, ruleset_text: str, seconds: int) -> Guard:
    """Check the candidate with ``nft -c``, save our current table, arm the rollback and
    load the candidate, in one remote command. A candidate nft refuses changes nothing."""
    armed_at = time.monotonic()
    result = transport.run_script(NFT_APPLY_SCRIPT, [str(seconds), NFT_RESTORE_SCRIPT],
                                  stdin=ruleset_text.encode(), check=False)
    if result.exit_code != 0:
        raise ApplyError(f"nft refused the new ruleset; nothing was changed: {result.err.strip()}")
    return Guard(armed_at, seconds)


def arm_ufw(transport: Transport, seconds: int) -> Guard:
    armed_at = time.monotonic()
    transport.run_script(UFW_ARM_SCRIPT, [str(seconds), UFW_RESTORE_SCRIPT])
    return Guard(armed_at, seconds)


def run_ufw(transport: Transport, commands: list[list[str]], guard: Guard) -> None:
    """Run ufw commands in one remote call; on a failure restore the saved state at
    once (ufw changes are not atomic) and raise with ufw's message."""
    if not commands:
        return
    script = "".join("\t".join(c) + "\n" for c in commands)
    result = transport.run_script(UFW_RUN_SCRIPT, stdin=script.encode(), check=False)
    if result.exit_code != 0:
        transport.run_script(RESTORE_NOW_SCRIPT, check=False)
        raise ApplyError(f"{result.err.strip() or 'ufw failed'}; the previous ufw rules were restored")


def confirm(transport: Transport, guard: Guard, management: ManagementPath | None) -> None:
    """Prove the management path still works with a fresh SSH login, then disarm.

    Raises FirewallLockout when no fresh login succeeds within the window: by then
    the host has restored the previous rules by itself; this waits for that and
    says whether SSH works again."""
    deadline = guard.armed_at + guard.seconds
    probed = False
    # Every probe must end before the timer fires: a login that only works because
    # the host already restored the old rules proves nothing about the new ones.
    while not probed:
        budget = min(10.0, deadline - 1.0 - time.monotonic())
        if budget < 1.5:
            break
        probed = transport.probe_new_connection(timeout=budget)
        if not probed:
            time.sleep(0.5)  # a refused connection fails at once; do not spin
    if probed:
        answer = transport.run_script(CONFIRM_SCRIPT).out.strip()
        if answer == "confirmed":
            return
        raise ApplyError(
            f"the new rules worked, but the {guard.seconds} s confirm window ran out before the reconciler "
            "could confirm them, so the host restored the previous rules; raise confirm_seconds")
    raise FirewallLockout(_after_lockout(transport, guard, management))


def _after_lockout(transport: Transport, guard: Guard, management: ManagementPath | None) -> str:
    port = f"port {management.port}" if management is not None else "the SSH port"
    what = (f"the new firewall rules cut new SSH logins to {port} (a fresh connection to "
            f"{transport.description} failed), so the change was not confirmed")
    wait = max(0.0, guard.armed_at + guard.seconds - time.monotonic()) + 20.0
    restored: bool | None = None
    try:
        # The established session still works (related/established traffic is always
        # accepted), so watch the host restore itself over it.
        out = transport.run_script(WAIT_ROLLBACK_SCRIPT, [str(int(wait))], timeout=wait + 30, check=False)
        restored = out.out.strip() == "0" if out.out.strip() else None
    except (TransportError, ReconcilerError):
        time.sleep(wait)
    back = False
    until = time.monotonic() + 30.0
    while not back and time.monotonic() < until:
        back = transport.probe_new_connection(timeout=10)
        if not back:
            time.sleep(1.0)
    if restored is False:
        return (f"{what}; the host tried to restore the previous rules after {guard.seconds} s but the "
                "restore failed (see `journalctl -u reconciler-firewall-rollback`)")
    if back:
        return (f"{what}; the host restored the previous rules by itself after {guard.seconds} s and SSH "
                "logins work again. Nothing was changed; allow the management port or check the rules")
    return (f"{what}; the host should have restored the previous rules after {guard.seconds} s, but SSH "
            "logins still fail: check the host from its console")


def persist_nft(transport: Transport, ruleset_text: str) -> None:
    transport.run_script(PERSIST_NFT_SCRIPT, [BOOT_UNIT_TEXT], stdin=ruleset_text.encode())


def remove_nft(transport: Transport) -> None:
    transport.run_script(REMOVE_NFT_SCRIPT)


def mark_ufw(transport: Transport) -> None:
    transport.write_file(UFW_MARKER, UFW_MARKER_TEXT.encode())


def unmark_ufw(transport: Transport) -> None:
    transport.run(["rm", "-f", "--", UFW_MARKER])
