"""The controller sets the status of each commit it runs in the forge (Gitea, Forgejo
or GitHub's status API): pending when the run starts, then failure (or success, see
test_notify_events_reach_receivers.py). Here against a Gitea-compatible stub server
on 127.0.0.1 (no real forge can run here), from a real controller pass; the token
goes in the Authorization header and nowhere else."""

from __future__ import annotations

from pathlib import Path

from reconciler.controller.notices import CommitState, CommitStatus
from reconciler.controller.notifications import Outcome
from tests.controller.notify_support import B, Outcomes, config, notifications
from tests.controller.receivers import GiteaStub
from tests.controller.support import LocalRepo, run_once

TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
UNREACHABLE = 'hosts:\n  web:\n    connect: "ssh://root@127.0.0.1:1"\n'


def forge_config(tmp_path: Path, stub: GiteaStub) -> Path:
    token = tmp_path / "forge-token"
    token.write_text(TOKEN + "\n")
    config = tmp_path / "controller.yaml"
    config.write_text(f"commit_status:\n  api: {stub.api}\n  repository: ops/servqr\n  token_file: {token}\n"
                      f"  context: reconciler/servqr\n  target_url: 'http://127.0.0.1:9109/#{{revision}}'\n")
    return config


def test_a_refused_commit_goes_from_pending_to_failure(tmp_path: Path) -> None:
    with GiteaStub(TOKEN) as stub:
        repo = LocalRepo(tmp_path / "repo")
        repo.write("specs/hosts.yaml", UNREACHABLE)
        repo.write("specs/app.yaml", "files:\n  - path: /srv/app.conf\n    content: x\n    mode: banana\n")
        sha = repo.commit("a typo")
        result = run_once(repo.path, tmp_path / "state", "--config", str(forge_config(tmp_path, stub)))
        assert result.returncode == 1
        assert stub.wait_states(sha, ["pending", "failure"]) == ["pending", "failure"]
        descriptions = stub.descriptions(sha)
        posts = [r for r in stub.requests if r.method == "POST"]
    assert descriptions[0] == "validating and applying"
    assert descriptions[1].startswith("refused: 1 error(s) in the spec; nothing was changed")
    assert all(len(d) <= 140 for d in descriptions)
    assert [p.path for p in posts] == [f"/api/v1/repos/ops/servqr/statuses/{sha}"] * 2
    body = posts[1].json()
    assert body["context"] == "reconciler/servqr" and body["target_url"] == f"http://127.0.0.1:9109/#{sha}"
    # The token is a header, never in a status or the controller's output.
    assert all(TOKEN not in p.body.decode() for p in posts)
    assert TOKEN not in result.stdout + result.stderr


def test_a_wrong_token_is_refused_and_not_retried(tmp_path: Path) -> None:
    outcomes = Outcomes()
    with GiteaStub("the-real-token") as stub:
        token = tmp_path / "token"
        token.write_text("a-wrong-token\n")
        cfg = config(tmp_path, commit_status={"api": stub.api, "repository": "ops/servqr",
                                              "token_file": str(token)},
                     notifications={"backoff_base": 0.05})
        hub = notifications(cfg, outcomes)
        hub.commit_status(CommitStatus(B, CommitState.PENDING, "validating and applying"))
        assert hub.wait_idle(10)
        hub.close(5)
        assert len(stub.requests) == 1 and stub.states(B) == []
    assert outcomes.seen == [("commit-status", Outcome.FAILED)]
