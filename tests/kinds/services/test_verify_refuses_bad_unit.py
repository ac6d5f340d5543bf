"""``systemd-analyze verify`` runs on the host before a unit is installed: a unit it
rejects is never written, the apply fails quoting systemd, and the live unit of a
service that was already running stays as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.services.support import (
    HOST_TIMEOUT,
    apply_ok,
    file_digest,
    is_active,
    reconcile,
    show,
    write_spec,
)

pytestmark = pytest.mark.timeout(HOST_TIMEOUT)

GOOD_UNIT = """\
[Unit]
Description=legacy worker

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""

BOGUS_UNIT = GOOD_UNIT.replace("ExecStart=/bin/sleep infinity",
                               "ExecStart=/bin/sleep infinity\nRestart=sometimes\nBogusDirective=1")


def test_missing_binary_is_refused_and_not_installed(fresh_host: TestHost, tmp_path: Path) -> None:
    spec_dir = write_spec(tmp_path / "spec", fresh_host, services=[
        {"name": "broken", "exec": ["/usr/local/bin/does-not-exist", "--serve"], "environment": {"A": "1"}},
        {"name": "fine", "exec": ["/bin/sleep", "infinity"]}])
    proc = reconcile("apply", str(spec_dir))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "✗ web: services:broken (create) FAILED" in proc.stdout
    assert "broken.service was not installed: systemd-analyze verify refused it" in proc.stdout
    assert "Command /usr/local/bin/does-not-exist is not executable" in proc.stdout
    assert file_digest(fresh_host, "/etc/systemd/system/broken.service") is None
    assert file_digest(fresh_host, "/etc/reconciler/services/broken.env") is None
    # One bad unit does not hold back the others.
    assert "✓ web: services:fine (create)" in proc.stdout
    assert is_active(fresh_host, "fine") == "active"


def test_bogus_directive_is_refused_and_live_unit_kept(fresh_host: TestHost, tmp_path: Path) -> None:
    spec_dir = write_spec(tmp_path / "spec", fresh_host, services=[{"name": "legacy", "unit": GOOD_UNIT}])
    apply_ok(spec_dir)
    live = file_digest(fresh_host, "/etc/systemd/system/legacy.service")
    running = show(fresh_host, "legacy", "InvocationID")

    write_spec(tmp_path / "spec", fresh_host, services=[{"name": "legacy", "unit": BOGUS_UNIT}])
    proc = reconcile("apply", str(spec_dir))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "legacy.service was not installed: systemd-analyze verify refused it" in proc.stdout
    # The message quotes the offending line: its number counts in the installed file.
    assert "legacy.service:10: Unknown key 'BogusDirective' in section [Service]" in proc.stdout
    assert "  > BogusDirective=1" in proc.stdout
    assert "Failed to parse service restart specifier, ignoring: sometimes" in proc.stdout
    assert file_digest(fresh_host, "/etc/systemd/system/legacy.service") == live
    assert show(fresh_host, "legacy", "InvocationID") == running
    assert is_active(fresh_host, "legacy") == "active"
