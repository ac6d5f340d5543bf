"""Credentials in a repository URL never reach a message, the status, the history, a
log line or the unit (unit-level; the end-to-end proof with a real systemd service is
``test_service_secrets_stay_out_of_sight.py``)."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import structlog

from reconciler.controller.cli import service_secrets, watch_argv
from reconciler.controller.config import load_config
from reconciler.controller.gitsource import GitSource, GitSourceError
from reconciler.controller.service import render_environment, render_unit
from reconciler.controller.state import ControllerStatus, ErrorRecord, StateStore
from reconciler.logs import configure
from reconciler.sensitive import redact_urls

TOKEN = "ghp-T0ken-abcdef123456"
URL = f"https://x-access-token:{TOKEN}@127.0.0.1:1/ops/specs.git"


def test_urls_are_redacted_wherever_they_appear() -> None:
    text = f"fatal: unable to access '{URL}/': Failed; also https://{TOKEN}@host/x and ssh://git@h/x"
    assert redact_urls(text) == ("fatal: unable to access 'https://(sensitive)@127.0.0.1:1/ops/specs.git/': "
                                 "Failed; also https://(sensitive)@host/x and ssh://git@h/x")
    assert redact_urls("ssh://deploy:pw123456@h/x") == "ssh://deploy:(sensitive)@h/x"


@pytest.mark.timeout(120)
def test_a_failed_clone_names_the_repository_without_its_token(tmp_path: Path) -> None:
    source = GitSource(URL, "main", tmp_path / "repo.git", tmp_path / "worktrees")
    with pytest.raises(GitSourceError) as caught:
        source.fetch()
    message = str(caught.value)
    assert TOKEN not in message
    assert "https://(sensitive)@127.0.0.1:1/ops/specs.git" in message


def test_status_history_and_logs_are_scrubbed(tmp_path: Path) -> None:
    load_config(None, {"repo": URL, "state_dir": str(tmp_path)})  # registers the token
    store = StateStore(tmp_path)
    error = ErrorRecord("abc", "now", "fetch", f"cannot fetch {URL}: token {TOKEN} refused")
    status = ControllerStatus(repo=URL, last_error=error)
    store.write_status(status)
    store.append_history({"revision": "abc", "error": f"git said {URL}"})
    on_disk = (tmp_path / "status.json").read_text() + (tmp_path / "history.jsonl").read_text()
    assert TOKEN not in on_disk
    assert json.loads((tmp_path / "status.json").read_text())["repo"] == \
        "https://(sensitive)@127.0.0.1:1/ops/specs.git"

    err = io.StringIO()
    with redirect_stderr(err):
        configure(fmt="json")
        structlog.get_logger("t").warning("fetch failed", error=f"unable to access '{URL}'")
        try:
            raise RuntimeError(f"boom {TOKEN}")
        except RuntimeError:
            structlog.get_logger("t").exception("step failed")
    assert TOKEN not in err.getvalue() and "fetch failed" in err.getvalue() and "boom" in err.getvalue()


def test_the_unit_gets_no_credentials_and_the_env_file_does(tmp_path: Path) -> None:
    args = argparse.Namespace(config=None, repo=URL, branch=None, path="specs", interval=None,
                              drift_interval=None, listen=None, webhook_secret_file=None,
                              allowed_signers=None, gpg_home=None, drift_correction=None, health_grace=None,
                              timezone=None, require_signed=None, watch_local=None, watch_events=None)
    config = load_config(None, {"repo": URL, "state_dir": str(tmp_path), "path": "specs"})
    secrets = service_secrets(args, config, {"RECONCILER_WEBHOOK_SECRET": "hook-secret-1"})
    assert secrets == {"RECONCILER_REPO": URL, "RECONCILER_WEBHOOK_SECRET": "hook-secret-1"}
    argv = watch_argv(args, config, secrets)
    assert "--repo" not in argv
    unit = render_unit(["/usr/bin/reconcile", *argv], repo=URL,
                       environment_file=Path("/etc/reconciler/reconciler-controller.env"))
    assert TOKEN not in unit and "hook-secret-1" not in unit
    assert "EnvironmentFile=/etc/reconciler/reconciler-controller.env" in unit
    assert render_environment(secrets).splitlines()[1:] == [f"RECONCILER_REPO='{URL}'",
                                                            "RECONCILER_WEBHOOK_SECRET='hook-secret-1'"]
