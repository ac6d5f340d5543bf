"""Each event of a controller managing a real test host reaches the receivers: the
generic webhook, a chat service through Apprise (``json://``), and the forge's
commit statuses (a Gitea-compatible stub). A commit applied (pending -> success),
an apply that fails and is rolled back (to which commit; pending -> failure),
drift corrected (which resources), and a commit outside the sync windows
(deferred; its status stays pending)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.controller.receivers import GiteaStub, Receiver, notices
from tests.controller.support import LocalRepo, files_yaml, run_once, ssh_hosts_yaml

APP = "/srv/notify/app.conf"
BLOCKER = "/srv/notify/blocker"  # a regular file: nothing can be created below it
TOKEN = "0123456789abcdef0123456789abcdef"
CLOSED_WINDOWS = 'sync_windows:\n  - {kind: allow, schedule: "0 0 1 1 *", duration: 1m}\n'


def controller_yaml(tmp_path: Path, receiver: Receiver, stub: GiteaStub, extra: str = "") -> Path:
    (tmp_path / "token").write_text(TOKEN)
    path = tmp_path / f"controller{len(extra)}.yaml"
    path.write_text(f"""{extra}notifications:
  link: "https://git.example.com/ops/servqr/commit/{{revision}}"
  targets:
    - {{name: ops, kind: webhook, url: "{receiver.url}/hook"}}
    - {{name: chat, kind: apprise, url: "json://127.0.0.1:{receiver.port}/chat",
       events: [rolled-back, drift-corrected]}}
commit_status: {{api: "{stub.api}", repository: ops/servqr, token_file: "{tmp_path / 'token'}"}}
""")
    return path


@pytest.mark.timeout(600)
def test_each_event_reaches_the_receivers(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    host.exec(["sh", "-c", f"mkdir -p /srv/notify && : > {BLOCKER} && rm -f {APP}"])
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))
    state = tmp_path / "state"
    with Receiver() as receiver, GiteaStub(TOKEN) as stub:
        config = controller_yaml(tmp_path, receiver, stub)

        def once(cfg: Path = config) -> int:
            return run_once(repo.path, state, "--config", str(cfg)).returncode

        # Applied.
        repo.write("specs/app.yaml", files_yaml({APP: "good\n"}))
        good = repo.commit("good")
        assert once() == 0
        [applied] = notices(receiver)
        assert (applied["event"], applied["revision"], applied["hosts"]) == ("commit-applied", good, ["web"])
        assert applied["resources"] == [f"web: files:{APP}"]
        assert applied["link"] == f"https://git.example.com/ops/servqr/commit/{good}"
        assert stub.states(good) == ["pending", "success"]
        assert stub.descriptions(good)[1] == "applied (+1 ~0 -0)"

        # Fails half-way and is rolled back to the good commit.
        repo.write("specs/app.yaml", files_yaml({APP: "half\n", f"{BLOCKER}/x.conf": "x\n"}))
        bad = repo.commit("a change that fails half-way")
        assert once() == 1
        rolled = notices(receiver)[-1]
        assert (rolled["event"], rolled["revision"], rolled["rollback_to"]) == ("rolled-back", bad, good)
        assert rolled["stage"] == "apply" and f"files:{BLOCKER}/x.conf" in rolled["detail"]
        assert rolled["resources"] == [f"web: files:{APP}"]  # what the rollback restored
        assert stub.states(bad) == ["pending", "failure"]
        assert stub.descriptions(bad)[1] == f"apply failed; rolled back to {good[:12]}"

        # Drift corrected: someone edits the file by hand.
        host.exec(["sh", "-c", f"echo by hand > {APP}"])
        assert once() == 0
        drift = notices(receiver)[-1]
        assert (drift["event"], drift["revision"], drift["hosts"]) == ("drift-corrected", good, ["web"])
        assert drift["resources"] == [f"web: files:{APP}"] and "by hand" not in str(drift)

        # Outside the sync windows: planned, told deferred, the status stays pending.
        repo.write("specs/app.yaml", files_yaml({APP: "later\n"}))
        later = repo.commit("later")
        assert once(controller_yaml(tmp_path, receiver, stub, CLOSED_WINDOWS)) == 0
        deferred = notices(receiver)[-1]
        assert (deferred["event"], deferred["revision"]) == ("commit-deferred", later)
        assert "outside every allow window" in deferred["summary"]
        assert stub.states(later) == ["pending", "pending"]
        assert stub.descriptions(later)[1].startswith("held by the sync windows")
        assert host.exec(["cat", APP]).stdout == "good\n"

        chat = [r.json() for r in receiver.requests if r.path == "/chat"]
    assert [n["event"] for n in notices(receiver)] == ["commit-applied", "rolled-back", "drift-corrected",
                                                      "commit-deferred"]
    # The chat target asked for two events only; Apprise's json:// carries title, message and type.
    assert [(m["type"], m["title"].split(":")[1].strip()) for m in chat] == [
        ("failure", f"commit {bad[:12]} rolled back to {good[:12]}"), ("warning", "drift corrected on web")]
