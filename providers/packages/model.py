"""The ``packages`` spec: Debian packages installed, upgraded, held or removed with apt."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from reconciler.provider import Issue, Resource

PackageState = Literal["present", "absent", "latest"]

# Debian policy 5.6.1: lower case letters, digits, + - . ; at least two characters,
# starting with a letter or digit. An optional :arch qualifier selects one architecture.
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")
# Debian policy 5.6.12: [epoch:]upstream_version[-debian_revision].
_VERSION = re.compile(r"^([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: int | str) -> int:
    """Seconds of ``"30s"``, ``"10m"``, ``"12h"``, ``"1d"``, ``"1w"`` or a plain number of
    seconds; ValueError when malformed."""
    if isinstance(value, bool):
        raise ValueError(f'expected a duration such as "10m", got {value!r}')
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return value
    m = _DURATION.match(value)
    if m is None:
        raise ValueError(f"{value!r} is not a duration; write a number and a unit s, m, h, d or w "
                         '(e.g. "10m", "1d")')
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)]


class Package(Resource):
    """One Debian package, as apt installs it.

    ``present`` installs the candidate version when the package is missing and is
    then satisfied by any version; ``latest`` also upgrades to the candidate of
    package lists at most ``lists_max_age`` old; ``version`` pins one exact version
    (``apt-get install name=version``, downgrades included). ``absent`` removes the
    package but keeps its configuration files (dpkg's "rc" state), as ``apt-get
    remove`` does; add ``purge: true`` to delete those too.

    A package that leaves the spec is only removed when the reconciler installed it
    *and* its spec said ``prune: true``; otherwise it stays installed, because other
    software on the host (or another spec) may need it.
    """

    name: str = Field(description="Package name, optionally with :arch (e.g. libc6:i386).")
    state: PackageState = Field(default="present", description=(
        "present: installed (any version unless pinned); latest: upgraded to the candidate; "
        "absent: removed (configuration files kept unless purge)."))
    version: str | None = Field(default=None, description=(
        "Exact version to install (apt-get install name=version); may downgrade. Pair with "
        "hold: true so apt upgrades leave it alone."))
    hold: bool | None = Field(default=None, description=(
        "true: apt-mark hold (upgrades leave it alone); false: apt-mark unhold; unset: not managed."))
    purge: bool = Field(default=False, description="With state absent: also delete its configuration files.")
    prune: bool = Field(default=False, description=(
        "Remove the package when this entry leaves the spec (only if the reconciler installed it). "
        "Off by default: a package other software needs must not disappear with one spec line."))
    lists_max_age: int | str = Field(default="1d", description=(
        'apt-get update first when the package lists are older than this (e.g. "6h", "1d"), '
        "before installing or looking for the latest version."))
    lock_timeout: int | str = Field(default="5m", description=(
        "How long apt waits for another apt or dpkg run on the host to finish (DPkg::Lock::Timeout)."))


def validate_package(p: Package) -> list[Issue]:
    issues: list[Issue] = []
    if not _NAME.match(p.name):
        issues.append(Issue(("name",), f"{p.name!r} is not a Debian package name (lower case letters, "
                                       "digits, '+', '-' and '.', optionally :arch)"))
    if p.version is not None:
        if not _VERSION.match(p.version):
            issues.append(Issue(("version",), f"{p.version!r} is not a Debian version "
                                              "([epoch:]upstream[-revision], e.g. 1.22.1-9)"))
        if p.state != "present":
            issues.append(Issue(("version",), f"a version pin needs state: present (got state: {p.state}); "
                                              "latest and absent ignore versions"))
    if p.state == "absent" and p.hold:
        issues.append(Issue(("hold",), "an absent package cannot be held"))
    if p.purge and p.state != "absent":
        issues.append(Issue(("purge",), "purge applies to state: absent only"))
    for name in ("lists_max_age", "lock_timeout"):
        try:
            parse_duration(getattr(p, name))
        except ValueError as exc:
            issues.append(Issue((name,), str(exc)))
    return issues
