"""A secret in a service's environment reaches the process but never appears in plan
text, JSON plans, apply output or logs, nor in the world-readable unit file or in
``systemctl show``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.services.support import (
    HOST_TIMEOUT,
    assert_no_changes,
    plan_json,
    reconcile,
    show,
    write_spec,
)

pytestmark = pytest.mark.timeout(HOST_TIMEOUT)

SECRET_PATH = "/etc/reconciler-test/api_token"


def test_secret_in_environment_is_never_shown(fresh_host: TestHost, tmp_path: Path) -> None:
    spec_dir = write_spec(tmp_path / "spec", fresh_host,
                          secrets=[{"name": "api_token", "path": SECRET_PATH, "length": 40}],
                          services=[{"name": "api", "exec": ["/bin/sleep", "infinity"],
                                     "environment": {"API_TOKEN": "${secret:api_token}",
                                                     "DSN": "postgres://app:${secret:api_token}@db/app",
                                                     "MODE": "production"}}])
    outputs: list[str] = []

    first_plan = reconcile("plan", str(spec_dir), "-v")
    assert first_plan.returncode == 0, first_plan.stdout + first_plan.stderr
    assert '"API_TOKEN": "(known after apply)"' in first_plan.stdout
    outputs += [first_plan.stdout, first_plan.stderr]

    applied = reconcile("apply", str(spec_dir), "-v", "--log-format", "json", "--output", "json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    outputs += [applied.stdout, applied.stderr]

    secret = fresh_host.exec(["cat", SECRET_PATH]).stdout
    assert len(secret) == 40

    # It did reach the service...
    pid = show(fresh_host, "api", "MainPID")["MainPID"]
    environ = fresh_host.exec(f"tr '\\0' '\\n' < /proc/{pid}/environ").stdout.splitlines()
    assert f"API_TOKEN={secret}" in environ and f"DSN=postgres://app:{secret}@db/app" in environ
    assert fresh_host.exec("stat -c '%a' /etc/reconciler/services/api.env").stdout.strip() == "600"
    # ...and nowhere a non-root user or an operator's terminal can see it.
    assert secret not in fresh_host.exec("cat /etc/systemd/system/api.service").stdout
    assert secret not in fresh_host.exec("systemctl show api.service").stdout

    # Drift in a secret value: shown as a sensitive change, values hidden.
    fresh_host.exec("sed -i 's/^API_TOKEN=.*/API_TOKEN=\"tampered-value-123456\"/' "
                    "/etc/reconciler/services/api.env")
    code, plan = plan_json(spec_dir)
    assert code == 2
    [change] = plan["hosts"][0]["changes"]
    token_field = next(f for f in change["fields"] if f["path"] == "environment.API_TOKEN")
    assert token_field == {"path": "environment.API_TOKEN", "old": "(sensitive)", "new": "(sensitive)",
                           "sensitive": True, "known_after_apply": False, "diff": None, "internal": False,
                           "explanation": ""}
    outputs.append(json.dumps(plan))
    for args in (("plan", str(spec_dir), "-v"), ("apply", str(spec_dir), "-v", "--log-format", "json")):
        proc = reconcile(*args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs += [proc.stdout, proc.stderr]
    assert_no_changes(spec_dir)

    for text in outputs:
        assert secret not in text
        assert "tampered-value-123456" not in text
