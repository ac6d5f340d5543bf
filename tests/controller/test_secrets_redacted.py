"""Secrets never reach the controller's records: a file embedding a generated secret
drifts and is corrected, and the drift event shows ``(sensitive)`` for before and
after, while the secret's value appears in neither history, status nor the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.controller.support import LocalRepo, read_history, run_once, ssh_hosts_yaml

SPEC = """\
secrets:
  - name: db_password
    path: /srv/redact/db_password
files:
  - path: /srv/redact/app.env
    content: "DB_PASSWORD=${secret:db_password}\\n"
    mode: "0600"
"""


@pytest.mark.timeout(300)
def test_drift_of_a_file_with_a_secret_is_logged_redacted(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    state = tmp_path / "state"
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))
    repo.write("specs/app.yaml", SPEC)
    repo.commit("app with a generated password")
    first = run_once(repo.path, state)
    assert first.returncode == 0, first.stderr
    secret = host.exec(["cat", "/srv/redact/db_password"]).stdout
    assert len(secret) == 32
    assert host.exec(["cat", "/srv/redact/app.env"]).stdout == f"DB_PASSWORD={secret}\n"

    host.exec(["sh", "-c", "echo DB_PASSWORD=guessed > /srv/redact/app.env"])
    second = run_once(repo.path, state)
    assert second.returncode == 0, second.stderr
    assert host.exec(["cat", "/srv/redact/app.env"]).stdout == f"DB_PASSWORD={secret}\n"

    entry = read_history(state)[-1]
    assert (entry["cause"], entry["result"]) == ("drift", "corrected")
    change = next(c for c in entry["changes"] if c["address"] == "files:/srv/redact/app.env")
    assert {"path": "content", "before": "(sensitive)", "after": "(sensitive)"} in change["fields"]
    for path in [state / "status.json", *state.glob("history*"), *(state / "history").glob("*")]:
        if path.is_file():
            assert secret not in path.read_text(), path
    for proc in (first, second):
        assert secret not in proc.stdout + proc.stderr
