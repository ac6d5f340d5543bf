"""apt and dpkg on the host: the commands the ``packages`` kind runs and the parsers
of their output (golden-tested against output captured from a test host).

Observation is one command for every package of a host: ``dpkg-query -W`` (what is
installed, its version and whether it is held) and ``apt-cache policy`` (installed
and candidate versions, every version the sources offer), plus the time of the last
successful ``apt-get update`` and the names marked ``prune: true``. It runs with
``LC_ALL=C``: apt translates its labels ("Installed:", "Candidate:").

Non-obvious behaviour this relies on:
- ``dpkg-query -W`` exits 1 when a name is unknown to dpkg and still prints the
  others; a removed package whose configuration files remain has status
  ``config-files`` (``dpkg -l`` shows ``rc``).
- ``apt-cache policy`` prints nothing on stdout for a name apt does not know
  (missing from the package lists, or lists never fetched); a purely virtual
  package shows ``Candidate: (none)``.
- The lists' file times are the *server's* Last-Modified, not the time of the
  fetch, so they cannot tell how fresh the lists are. The reconciler touches its
  own stamp after each successful ``apt-get update``; apt's periodic job touches
  ``/var/lib/apt/periodic/update-success-stamp``; the newer of the two counts.
- ``apt-get update`` exits 0 when a source fails to download or verify, unless
  ``--error-on=any`` (apt >= 2.1, Debian 11 has 2.2).
- ``apt-get install a b- `` removes ``b`` in the same transaction; ``--purge``
  would apply to every removal of it, so purges run as their own ``apt-get purge``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from reconciler.inventory import STATE_DIR as INVENTORY_DIR

UPDATE_STAMP = f"{INVENTORY_DIR}/apt-update.stamp"
PERIODIC_STAMP = "/var/lib/apt/periodic/update-success-stamp"
PRUNE_MARKS = f"{INVENTORY_DIR}/packages-prune.list"

# Every apt/dpkg command: no questions, keep a locally changed configuration file
# (a package's new default is left beside it as .dpkg-dist), untranslated messages.
APT_ENV = ("export DEBIAN_FRONTEND=noninteractive LC_ALL=C APT_LISTCHANGES_FRONTEND=none "
           "UCF_FORCE_CONFFOLD=1 NEEDRESTART_SUSPEND=1")
DPKG_OPTIONS = ("-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")

# $1: how many of the names that follow need only dpkg's answer (owned packages that
# left the spec, other kinds' prerequisites): apt-cache policy, the slower half, is
# asked only about the rest (the spec's own packages).
OBSERVE = f"""
export LC_ALL=C
only=$1; shift
echo "@arch $(dpkg --print-architecture)"
echo "@now $(date +%s)"
for f in {UPDATE_STAMP} {PERIODIC_STAMP}; do
  [ -e "$f" ] && echo "@updated $(stat -c %Y "$f")"
done
[ -r {PRUNE_MARKS} ] && sed -n 's/^\\([a-z0-9][a-z0-9+.:-]*\\)$/@prune \\1/p' {PRUNE_MARKS}
echo "@dpkg"
fmt='${{Package}}\\t${{Architecture}}\\t${{Version}}\\t${{db:Status-Want}}\\t${{db:Status-Status}}\\n'
[ "$#" -gt 0 ] && dpkg-query -W -f="$fmt" -- "$@" 2>/dev/null
echo "@policy"
shift "$only"
[ "$#" -gt 0 ] && apt-cache policy -- "$@" 2>/dev/null
exit 0
"""

# $1: DPkg::Lock::Timeout in seconds. Touches the stamp only when every source was
# fetched and verified.
UPDATE = f"""
{APT_ENV}
apt-get -q update --error-on=any -o DPkg::Lock::Timeout="$1" || exit $?
mkdir -p {INVENTORY_DIR} && touch {UPDATE_STAMP}
"""

# $1: lock timeout, $2: "simulate" or "run", $3...: extra apt-get options, then "--",
# then the package arguments (name, name=version, name-).
INSTALL = f"""
{APT_ENV}
timeout=$1; mode=$2; shift 2
if [ "$mode" = simulate ]; then
  exec apt-get -q -s -o DPkg::Lock::Timeout="$timeout" install "$@"
fi
exec apt-get -q -y -o DPkg::Lock::Timeout="$timeout" {" ".join(DPKG_OPTIONS)} install "$@"
"""

# $1: lock timeout, then the names to purge.
PURGE = f"""
{APT_ENV}
timeout=$1; shift
exec apt-get -q -y -o DPkg::Lock::Timeout="$timeout" purge -- "$@"
"""

# $1: names to hold (space-separated, may be empty), $2: names to unhold.
MARK = """
export LC_ALL=C
[ -z "$1" ] || apt-mark hold $1 >/dev/null || exit $?
[ -z "$2" ] || apt-mark unhold $2 >/dev/null || exit $?
"""


@dataclass(frozen=True)
class DpkgEntry:
    """One line of ``dpkg-query -W``: a package dpkg knows (installed or not)."""

    package: str
    arch: str
    version: str
    want: str    # install, hold, deinstall, purge, unknown
    status: str  # installed, config-files, not-installed, half-installed, unpacked, ...

    @property
    def held(self) -> bool:
        return self.want == "hold"


@dataclass(frozen=True)
class Policy:
    """What ``apt-cache policy`` says about one name."""

    installed: str | None
    candidate: str | None
    versions: tuple[str, ...]  # every version some source (or dpkg's status) offers, as listed


@dataclass
class AptFacts:
    """One host's package facts, from one ``OBSERVE`` run."""

    arch: str = ""
    now: int = 0
    updated: int | None = None  # epoch seconds of the last successful apt-get update
    dpkg: dict[str, list[DpkgEntry]] = field(default_factory=dict)  # by package name
    policy: dict[str, Policy] = field(default_factory=dict)         # by the name as queried
    prune_marked: set[str] = field(default_factory=set)

    def entry(self, pkg_id: str) -> DpkgEntry | None:
        """dpkg's entry for ``name`` or ``name:arch``: the native (or ``all``) one
        when no architecture is given, or the only one there is."""
        name, _, arch = pkg_id.partition(":")
        entries = self.dpkg.get(name, [])
        if arch:
            return next((e for e in entries if e.arch == arch), None)
        native = [e for e in entries if e.arch in (self.arch, "all")]
        if native:
            return native[0]
        return entries[0] if len(entries) == 1 else None

    def lists_age(self) -> int | None:
        """Seconds since the last successful ``apt-get update``; None when unknown."""
        return None if self.updated is None else max(self.now - self.updated, 0)

    def merge(self, newer: AptFacts, asked: Sequence[str]) -> None:
        """Take ``newer``'s answers for the names in ``asked`` (a partial re-observe); a
        name it has no answer for is now unknown (dpkg and apt print nothing for it;
        apt was not asked about names that needed dpkg's answer only)."""
        self.arch, self.now, self.updated = newer.arch or self.arch, newer.now, newer.updated
        for pkg_id in asked:
            name = pkg_id.partition(":")[0]
            self.dpkg.pop(name, None)
            self.policy.pop(pkg_id, None)
        self.dpkg.update(newer.dpkg)
        self.policy.update(newer.policy)
        self.prune_marked = set(newer.prune_marked)


def parse_dpkg_query(text: str) -> dict[str, list[DpkgEntry]]:
    """``dpkg-query -W -f='${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Want}\\t
    ${db:Status-Status}\\n'`` output, by package name."""
    out: dict[str, list[DpkgEntry]] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 5 or not parts[0]:
            continue
        entry = DpkgEntry(*parts)
        out.setdefault(entry.package, []).append(entry)
    return out


_POLICY_HEADER = re.compile(r"^(\S+):$")
_POLICY_FIELD = re.compile(r"^  (Installed|Candidate): (.*)$")
# "     1.22.1-9 500" or " *** 3.11.2-1+b1 100": a version line of the version table.
_POLICY_VERSION = re.compile(r"^ (?:\*\*\*| {3}) (\S+) -?\d+$")


def parse_policy(text: str) -> dict[str, Policy]:
    """``apt-cache policy NAME...`` output (LC_ALL=C), by the name as printed in each
    section header (``nginx``, ``libc6:i386``). Names apt does not know have no section."""
    out: dict[str, Policy] = {}
    name: str | None = None
    fields: dict[str, str | None] = {}
    versions: list[str] = []

    def flush() -> None:
        if name is not None:
            out[name] = Policy(fields.get("Installed"), fields.get("Candidate"), tuple(versions))

    for line in text.splitlines():
        header = _POLICY_HEADER.match(line)
        if header:
            flush()
            name, fields, versions = header.group(1), {}, []
            continue
        m = _POLICY_FIELD.match(line)
        if m:
            value = m.group(2).strip()
            fields[m.group(1)] = None if value == "(none)" else value
            continue
        v = _POLICY_VERSION.match(line)
        if v and v.group(1) not in versions:
            versions.append(v.group(1))
    flush()
    return out


def parse_observation(text: str) -> AptFacts:
    """The output of ``OBSERVE``."""
    facts = AptFacts()
    section = ""
    dpkg_lines: list[str] = []
    policy_lines: list[str] = []
    for line in text.splitlines():
        if line in ("@dpkg", "@policy"):
            section = line
            continue
        if section == "@dpkg":
            dpkg_lines.append(line)
        elif section == "@policy":
            policy_lines.append(line)
        elif line.startswith("@arch "):
            facts.arch = line[6:].strip()
        elif line.startswith("@now "):
            facts.now = int(line[5:])
        elif line.startswith("@updated "):
            stamp = int(line[9:])
            facts.updated = stamp if facts.updated is None else max(facts.updated, stamp)
        elif line.startswith("@prune "):
            facts.prune_marked.add(line[7:].strip())
    facts.dpkg = parse_dpkg_query("\n".join(dpkg_lines))
    facts.policy = parse_policy("\n".join(policy_lines))
    return facts


_SIM_REMOVAL = re.compile(r"^(?:Remv|Purg) (\S+)")


def simulated_removals(text: str) -> list[str]:
    """Package names (without :arch) ``apt-get -s`` would remove or purge."""
    names = []
    for line in text.splitlines():
        m = _SIM_REMOVAL.match(line)
        if m:
            names.append(m.group(1).partition(":")[0])
    return names


_LOCK = re.compile(r"Could not get lock (\S+?)\.? It is held by process (\d+) \(([^)]*)\)")
_UNKNOWN = re.compile(r"^E: Unable to locate package (\S+)", re.MULTILINE)
_NO_VERSION = re.compile(r"^E: Version '([^']*)' for '([^']*)' was not found", re.MULTILINE)


def explain_apt_failure(output: str, host: str, lock_timeout: int) -> str:
    """apt's failure in the operator's terms (``output``: its stderr and stdout)."""
    lock = _LOCK.search(output)
    if lock or "Unable to acquire the dpkg frontend lock" in output or "Could not get lock" in output:
        holder = f" by process {lock.group(2)} ({lock.group(3)})" if lock else ""
        return (f"the dpkg lock on host {host} is held{holder}: another apt or dpkg run "
                f"(unattended-upgrades, an operator) is working; waited {lock_timeout} s (lock_timeout). "
                "Try again when it is done")
    if "dpkg was interrupted" in output:
        return (f"dpkg was interrupted on host {host} earlier and left packages half-configured; run "
                "`dpkg --configure -a` there first (it finishes every pending package, not only ours)")
    problems = [f"package {name} is not known to apt on host {host}" for name in _UNKNOWN.findall(output)]
    problems += [f"version {version} of {name} is not available on host {host}"
                 for version, name in _NO_VERSION.findall(output)]
    if problems:
        return "; ".join(problems)
    if "Held packages were changed" in output:
        return (f"apt refuses to change a held package on host {host}; set hold: true or hold: false "
                "on it in the spec to let the reconciler manage the hold")
    lines = [ln for ln in output.splitlines() if ln.startswith(("E:", "dpkg:", " ")) and ln.strip()]
    return "\n".join(lines[-15:]) or output.strip()[-1500:]
