"""A generated secret's value (read from the host) never appears in anything the
reconciler prints or writes besides its own file and the files that use it: plan
text, JSON plan, a saved plan, apply output (text and JSON), JSON logs at debug
level, error messages, or the inventory. Checked raw and base64-encoded (observation
moves values as base64)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import cat, reconcile, write_spec

SECRET_PATH = "/etc/vault/db_password"
RESOURCES = {
    "secrets": [{"name": "db_password", "path": SECRET_PATH}],
    "files": [
        {"path": "/etc/vault/db.env", "content": "PASSWORD=${secret:db_password}\n", "mode": "0600"},
        {"path": "/etc/vault/url", "content": "postgres://app:${secret:db_password}@db/app\n"},
    ],
}
LOUD = ("--log-format", "json", "-vv")


def assert_hidden(value: str, outputs: list[str | subprocess.CompletedProcess[str]]) -> None:
    forms = {value, base64.b64encode(value.encode()).decode()}
    for out in outputs:
        text = out if isinstance(out, str) else out.stdout + "\n" + out.stderr
        for form in forms:
            assert form not in text, f"secret leaked into:\n{text}"


@pytest.mark.timeout(400)
def test_secret_value_never_appears(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, RESOURCES)
    outputs: list[str | subprocess.CompletedProcess[str]] = []

    # First run: the secret is generated during the run.
    outputs.append(reconcile("plan", spec, *LOUD, check_code=0))
    outputs.append(reconcile("apply", spec, *LOUD, check_code=0))
    first = cat(host, SECRET_PATH)
    assert len(first) == 32
    assert cat(host, "/etc/vault/db.env") == f"PASSWORD={first}\n"

    # Drift on a file that embeds it: the plan shows the change, not the value.
    host.exec("echo 'PASSWORD=guess' > /etc/vault/db.env; chmod 0644 /etc/vault/db.env")
    text_plan = reconcile("plan", spec, *LOUD, check_code=0)
    # The content is a diff of the text with the secret redacted; only its value differs here.
    assert "~ content = (only secret values differ, and they are not shown)" in text_plan.stdout
    assert "guess" not in text_plan.stdout
    outputs.append(text_plan)
    outputs.append(reconcile("plan", spec, "--output", "json", *LOUD, check_code=0))
    saved = tmp_path / "plan.json"
    outputs.append(reconcile("plan", spec, "--out", saved, *LOUD, check_code=0))
    outputs.append(saved.read_text())
    outputs.append(reconcile("apply", saved, "--output", "json", *LOUD, check_code=0))
    outputs.append(reconcile("apply", spec, *LOUD, check_code=0))
    assert cat(host, "/etc/vault/db.env") == f"PASSWORD={first}\n"

    # A failing change that carries the secret: the error has stderr, not the content.
    failing = {**RESOURCES, "files": [*RESOURCES["files"], {
        "path": "/etc/vault/broken.env", "content": "X=${secret:db_password}\n", "owner": "nosuchuser"}]}
    write_spec(spec, {"web": host}, failing)
    broken = reconcile("apply", spec, *LOUD, check_code=1)
    assert "/etc/vault/broken.env: unknown user 'nosuchuser'" in broken.stdout
    outputs.append(broken)
    outputs.append(reconcile("apply", spec, "--output", "json", *LOUD, check_code=1))
    write_spec(spec, {"web": host}, RESOURCES)

    # Replacement: neither the old nor the new value shows.
    outputs.append(reconcile("plan", spec, "--replace", "secrets:db_password", *LOUD, check_code=0))
    outputs.append(reconcile("apply", spec, "--replace", "secrets:db_password", *LOUD, check_code=0))
    outputs.append(reconcile("apply", spec, "--replace", "secrets:db_password", "--output", "json", *LOUD,
                             check_code=0))
    second = cat(host, SECRET_PATH)
    assert second != first

    outputs.append(cat(host, "/var/lib/reconciler/owners.json"))
    outputs.append(host.exec("cat /var/lib/reconciler/stacks/*.json").stdout)
    assert any('"event": "change"' in o.stderr for o in outputs if not isinstance(o, str))  # logs were on
    assert_hidden(first, outputs)
    assert_hidden(second, outputs)
    # The previous value is gone from the host too (its file was replaced, not appended to).
    assert host.exec(["grep", "-rl", first, "/etc/vault"], check=False).stdout == ""
