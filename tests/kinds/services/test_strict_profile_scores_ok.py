"""The default hardening profile (strict) passes systemd's own scanner: a plain network
service converges healthy with ``systemd-analyze security`` at 2.0 or less ("OK"), the
plan announced the score it got, and a program that needs a directive strict takes
away fails with a message naming the directive, then runs once the spec opts out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.services.support import (
    HOST_TIMEOUT,
    apply_ok,
    assert_no_changes,
    changes,
    http_service,
    is_active,
    plan_json,
    reconcile,
    write_spec,
)

pytestmark = pytest.mark.timeout(HOST_TIMEOUT)

# The scanner's threshold is in tenths: 20 means an exposure of 2.0.
OK_THRESHOLD = "20"


def live_score(host: TestHost, unit: str) -> str:
    out = host.exec(["systemd-analyze", "security", "--no-pager", unit]).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d) ([A-Z]+)", out)
    assert match, out
    return f"{match.group(1)} {match.group(2)}"


def field(change: dict[str, object], path: str) -> dict[str, object]:
    found = [f for f in change["fields"] if isinstance(f, dict) and f["path"] == path]  # type: ignore[union-attr]
    assert found, change
    return found[0]


def test_strict_by_default_scores_ok_and_names_what_breaks(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    web = http_service("strict-web", 8131, user="nobody")
    spec_dir = write_spec(tmp_path / "spec", host, services=[web])

    # The plan shows the score the new unit will have, measured on the host.
    _, plan = plan_json(spec_dir)
    (created,) = changes(plan)
    planned = field(created, "exposure")["new"]
    assert isinstance(planned, str) and re.fullmatch(r"\d\.\d [A-Z]+", planned), planned
    assert float(planned.split()[0]) <= 2.0, planned

    apply_ok(spec_dir)
    assert is_active(host, "strict-web") == "active"
    served = host.exec(["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8131/"], check=False)
    assert served.returncode == 0, served.stderr
    # systemd's scanner agrees with the plan and passes the unit at 2.0.
    assert live_score(host, "strict-web.service") == planned
    gate = host.exec(["systemd-analyze", "security", "--no-pager", f"--threshold={OK_THRESHOLD}",
                      "strict-web.service"], check=False)
    assert gate.returncode == 0, gate.stdout
    assert_no_changes(spec_dir)

    # The same service under the earlier default: the plan shows the score going up.
    spec_dir = write_spec(tmp_path / "spec", host, services=[{**web, "hardening": "basic"}])
    _, plan = plan_json(spec_dir)
    (updated,) = changes(plan)
    exposure = field(updated, "exposure")
    assert exposure["old"] == planned
    assert isinstance(exposure["new"], str) and float(exposure["new"].split()[0]) > 2.0, exposure
    apply_ok(spec_dir)
    assert live_score(host, "strict-web.service") == exposure["new"]

    # A program writing outside its read_write_paths: strict's read-only file system.
    writer = {"name": "state-writer", "user": "nobody",
              "exec": ["/bin/sh", "-c", "echo ready > /var/lib/state-writer/state && exec sleep infinity"],
              "restart": "no", "health": {"command": ["test", "-s", "/var/lib/state-writer/state"],
                                          "timeout": 20}}
    directory = {"path": "/var/lib/state-writer", "owner": "nobody", "group": "nogroup", "mode": "0750"}
    spec_dir = write_spec(tmp_path / "spec", host, directories=[directory], services=[writer])
    proc = reconcile("apply", str(spec_dir))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "✗ web: services:state-writer (create) FAILED" in proc.stdout
    assert "Read-only file system" in proc.stdout
    assert "hint: the service runs sandboxed (hardening profile strict)." in proc.stdout
    assert "add the directory the program writes to hardening.read_write_paths" in proc.stdout

    # Opting out of exactly that: the rest of strict stays, and the unit still scores OK.
    writer["hardening"] = {"read_write_paths": ["/var/lib/state-writer"]}
    spec_dir = write_spec(tmp_path / "spec", host, directories=[directory], services=[writer])
    apply_ok(spec_dir)
    assert host.exec(["cat", "/var/lib/state-writer/state"]).stdout.strip() == "ready"
    gate = host.exec(["systemd-analyze", "security", "--no-pager", f"--threshold={OK_THRESHOLD}",
                      "state-writer.service"], check=False)
    assert gate.returncode == 0, gate.stdout
