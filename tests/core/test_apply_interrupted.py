"""Ctrl-C (SIGINT) during an apply: the change under way finishes, the rest are
reported as not applied, the report says what was applied, the inventory is
written and the host lock is released, so the next apply gets it at once.

The slow change is a real oneshot service whose start takes 8 s (``systemctl
restart`` waits for it); SIGINT is sent while systemd shows it activating.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import RECONCILE, changes_by_address, exists, plan_json, reconcile, write_spec

RESOURCES = {
    "files": [{"path": "/srv/int/first.conf", "content": "first\n"},
              {"path": "/srv/int/after.conf", "content": "after\n", "depends_on": ["services:slow"]}],
    "services": [{"name": "slow", "type": "oneshot", "remain_after_exit": True, "exec": ["/bin/sleep", "8"],
                  "restart": "no"}],
}


def active_state(host: TestHost, unit: str) -> str:
    return host.exec(["systemctl", "show", "-p", "ActiveState", "--value", unit], check=False).stdout.strip()


@pytest.mark.timeout(400)
def test_sigint_reports_and_releases_the_lock(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, RESOURCES)
    proc = subprocess.Popen([str(RECONCILE), "apply", str(spec), "--color", "never"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while active_state(host, "slow.service") != "activating":
        assert proc.poll() is None, f"apply ended before the slow change started:\n{proc.communicate()}"
        assert time.monotonic() < deadline, "the slow service never started"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 130, out + err
    assert "Interrupted: finishing the change under way, then stopping" in err
    assert "Traceback" not in err
    assert "  ✓ web: files:/srv/int/first.conf (create)" in out
    assert "  ✓ web: services:slow (create)" in out  # the change under way finished
    assert "  - web: files:/srv/int/after.conf not applied: not started: the run was interrupted" in out
    assert out.rstrip().endswith("Apply INTERRUPTED. 2 applied, 0 failed, 0 skipped, 1 not applied.")
    assert active_state(host, "slow.service") == "active"
    assert not exists(host, "/srv/int/after.conf")

    # The inventory was written: what was applied is known, only the rest is left.
    assert set(changes_by_address(plan_json(spec))) == {"files:/srv/int/after.conf"}
    # The lock was released: a second apply that will not wait for it gets it at once.
    second = reconcile("apply", spec, "--lock-timeout", "0", check_code=0)
    assert "  ✓ web: files:/srv/int/after.conf (create)" in second.stdout
    assert exists(host, "/srv/int/after.conf")
