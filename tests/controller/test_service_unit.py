"""The controller's systemd unit: argument quoting, the settings it must have, and
systemd's own verdict on it (``systemd-analyze verify`` on a test host)."""

from __future__ import annotations

import pytest

from reconciler.controller.service import render_unit, systemd_quote
from testbed.hosts import TestHost


def test_quoting() -> None:
    assert systemd_quote("/opt/reconciler/venv/bin/reconcile") == "/opt/reconciler/venv/bin/reconcile"
    assert systemd_quote("has space") == '"has space"'
    assert systemd_quote('say "hi"') == '"say \\"hi\\""'
    assert systemd_quote("$HOME") == '"$$HOME"'
    assert systemd_quote("100%") == '"100%%"'
    assert systemd_quote("") == '""'


def test_unit_settings() -> None:
    unit = render_unit(["/usr/bin/reconcile", "watch", "--repo", "/srv/git ops"], repo="/srv/git ops")
    lines = set(unit.splitlines())
    assert 'ExecStart=/usr/bin/reconcile watch --repo "/srv/git ops"' in lines
    for setting in ("Type=notify", "NotifyAccess=main", "WatchdogSec=120", "Restart=always", "KillMode=mixed",
                    "NoNewPrivileges=yes", "WantedBy=multi-user.target"):
        assert setting in lines


@pytest.mark.timeout(300)
def test_systemd_accepts_the_unit(shared_host: TestHost) -> None:
    unit = render_unit(["/bin/sleep", "infinity"], repo="/srv/gitops")
    shared_host.exec(["mkdir", "-p", "/tmp/unit-check"])
    shared_host.exec(["sh", "-c", "cat > /tmp/unit-check/reconciler-controller.service"], input=unit)
    proc = shared_host.exec(["systemd-analyze", "verify", "/tmp/unit-check/reconciler-controller.service"],
                            check=False)
    assert proc.returncode == 0, proc.stderr
    assert "reconciler-controller.service" not in proc.stderr, proc.stderr
