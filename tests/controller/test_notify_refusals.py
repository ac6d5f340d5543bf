"""Commits refused before any host is touched reach the receiver as notices, from a
real controller pass (``reconcile watch --once``): a spec with errors (with
file:line), an unsigned commit under ``require_signed``, and a commit the
controller died on three times (its restart and the crash loop)."""

from __future__ import annotations

from pathlib import Path

from reconciler.controller.state import ControllerStatus, InFlight, StateStore, utc_now
from tests.controller.receivers import Receiver, notices
from tests.controller.support import LocalRepo, files_yaml, run_once

UNREACHABLE = 'hosts:\n  web:\n    connect: "ssh://root@127.0.0.1:1"\n'  # never contacted


def setup(tmp_path: Path, receiver: Receiver, extra: str = "") -> tuple[LocalRepo, Path]:
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", UNREACHABLE)
    config = tmp_path / "controller.yaml"
    config.write_text(f"{extra}notifications:\n  targets:\n"
                      f"    - {{name: ops, kind: webhook, url: '{receiver.url}/hook'}}\n")
    return repo, config


def test_a_commit_with_spec_errors_is_told_with_file_and_line(tmp_path: Path) -> None:
    with Receiver() as receiver:
        repo, config = setup(tmp_path, receiver)
        repo.write("specs/app.yaml", "files:\n  - path: /srv/app.conf\n    content: x\n    mode: banana\n")
        sha = repo.commit("a typo in the mode")
        assert run_once(repo.path, tmp_path / "state", "--config", str(config)).returncode == 1
    [notice] = notices(receiver)
    assert (notice["event"], notice["revision"], notice["stage"]) == ("commit-refused", sha, "spec")
    assert notice["summary"].startswith(f"commit {sha[:12]} refused: 1 error(s) in the spec")
    assert "specs/app.yaml:4:" in notice["detail"] and "mode" in notice["detail"]
    assert notice["commit"]["summary"] == "a typo in the mode" and notice["commit"]["author"] == (
        "Ops <ops@example.com>")


def test_an_unsigned_commit_is_told_refused(tmp_path: Path) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_text("ops@example.com ssh-ed25519 "
                       "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    with Receiver() as receiver:
        repo, config = setup(tmp_path, receiver, f"require_signed: true\nallowed_signers: {signers}\n")
        repo.write("specs/app.yaml", files_yaml({"/srv/app.conf": "x\n"}))
        sha = repo.commit("not signed")
        assert run_once(repo.path, tmp_path / "state", "--config", str(config)).returncode == 1
    [notice] = notices(receiver)
    assert (notice["event"], notice["revision"], notice["stage"]) == ("commit-refused", sha, "signature")
    assert "signature check failed" in notice["summary"]


def test_a_crash_looping_commit_is_told(tmp_path: Path) -> None:
    with Receiver() as receiver:
        repo, config = setup(tmp_path, receiver)
        repo.write("specs/app.yaml", files_yaml({"/srv/app.conf": "x\n"}))
        deadly = repo.commit("the commit that kills the controller")
        state = tmp_path / "state"
        store = StateStore(state)
        store.prepare()
        store.write_status(ControllerStatus(in_flight=InFlight(deadly, "commit", utc_now(), attempts=3)))
        assert run_once(repo.path, state, "--config", str(config)).returncode == 1
    restarted, loop = notices(receiver)
    assert (restarted["event"], restarted["revision"]) == ("controller-restarted", deadly)
    assert "attempt 3" in restarted["summary"] and restarted["severity"] == "warning"
    assert (loop["event"], loop["revision"], loop["severity"]) == ("controller-crash-loop", deadly, "error")
    assert "stopped 3 times" in loop["summary"]
