"""Pull mode: the controller runs on each host and applies only that host's part.

``reconcile watch --host NAME`` (or ``--host auto``: the host of the spec named like
this machine) loads each revision as usual and keeps only that host, reached through
the local transport (``LoadedSpec.for_pull``): its resources, with fleet references
resolved from the whole fleet, so a load balancer running its own controller still
lists every backend. Every host of a fleet can run one against the same repository.
"""

from __future__ import annotations

import contextlib
import socket

from reconciler.errors import ReconcilerError
from reconciler.spec import LoadedSpec

AUTO = "auto"


def machine_names() -> list[str]:
    """How this machine may be called in a spec: its hostname, its short name, its FQDN."""
    names = [socket.gethostname()]
    names.append(names[0].split(".", 1)[0])
    with contextlib.suppress(OSError):  # no resolver: the hostname is enough
        names.append(socket.getfqdn())
    return list(dict.fromkeys(n for n in names if n))


def pull_host(wanted: str, spec: LoadedSpec, names: list[str] | None = None) -> str:
    """The spec's host this controller is: ``wanted``, or for ``auto`` the host named
    like this machine. ReconcilerError when there is none."""
    if wanted != AUTO:
        if wanted not in spec.hosts:
            raise ReconcilerError(f"--host {wanted}: this revision's spec has no host {wanted!r} (its hosts: "
                                  f"{', '.join(spec.fleet.ordered(spec.hosts))})")
        return wanted
    names = names if names is not None else machine_names()
    for name in names:
        if name in spec.hosts:
            return name
    raise ReconcilerError(f"--host auto: no host of this revision's spec is named like this machine "
                          f"({', '.join(names)}); its hosts: {', '.join(spec.fleet.ordered(spec.hosts))}")


def for_this_host(wanted: str, spec: LoadedSpec) -> LoadedSpec:
    return spec.for_pull(pull_host(wanted, spec))
