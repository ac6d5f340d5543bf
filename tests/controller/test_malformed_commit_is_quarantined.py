"""A malformed commit of any kind is an ordinary bad commit for the controller:
refused at the spec stage with file:line:col diagnostics, quarantined, never
retried, and the hosts stay on the last good revision.

Before the fix a deep-nesting commit raised RecursionError inside the loader; the
controller recorded ``internal: KeyError: 'result'`` and retried it on every pass,
forever. A real git repository on this machine, a real test host over SSH; each
case is one commit followed by one ``reconcile watch --once`` pass."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.controller.support import (
    LocalRepo,
    files_yaml,
    read_history,
    read_status,
    run_once,
    ssh_hosts_yaml,
)

APP = "/srv/malformed/app.conf"
BAD = "specs/bad.yaml"


def laughs() -> str:
    lines = ["lol:", "  l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


# case -> (files to commit, text the refusal must contain, the spec file:line it names)
CASES: dict[str, tuple[dict[str, str | bytes], str, str]] = {
    "deep_nesting": ({BAD: "vars:\n  deep: " + "[" * 5000 + "]" * 5000 + "\n"},
                     "nested more than 64 levels deep", "bad.yaml:2:"),
    "alias_bomb": ({BAD: laughs()}, "expands the document past 250,000 values", "bad.yaml:7:"),
    "recursive_alias": ({BAD: "vars:\n  a: &me {b: *me}\n"}, "refers to a node that contains it",
                        "bad.yaml:2:"),
    "odd_scalar": ({BAD: "files:\n  - {path: /srv/malformed/d, content: 2021-02-30}\n"},
                   "cannot read this timestamp", "bad.yaml:2:"),
    "port_out_of_range": ({BAD: "nginx_sites:\n  - name: a\n    locations:\n"
                                "      - {path: /, proxy_pass: 'http://127.0.0.1:99999'}\n"},
                          "port 99999", "bad.yaml:4:"),
    "path_spelling": ({BAD: "files:\n  - {path: /srv/malformed//x, content: x}\n"},
                      "write '/srv/malformed/x'", "bad.yaml:2:"),
    "variable_cycle": ({BAD: "vars:\n  a: ${b}\n  b: ${a}\n"}, "cycle", "bad.yaml:2:"),
    "non_utf8_template": ({BAD: "files:\n  - {path: /srv/malformed/t, template: t.tpl}\n",
                           "specs/t.tpl": b"caf\xe9\n"}, "is not UTF-8 text", "bad.yaml:2:"),
    "template_outside": ({BAD: "files:\n  - {path: /srv/malformed/k, template: /etc/hostname}\n"},
                         "outside the spec's repository", "bad.yaml:2:"),
}


@pytest.mark.timeout(900)
def test_each_malformed_commit_is_refused_and_quarantined(shared_host: TestHost, tmp_path: Path) -> None:
    host = shared_host
    state = tmp_path / "state"
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(host))
    repo.write("specs/app.yaml", files_yaml({APP: "good\n"}))
    good = repo.commit("good")
    proc = run_once(repo.path, state)
    assert proc.returncode == 0, proc.stderr
    assert read_status(state)["last_applied"]["revision"] == good

    for case, (files, reason, where) in CASES.items():
        for rel in ("specs/bad.yaml", "specs/t.tpl"):
            if (repo.path / rel).exists():
                os.unlink(repo.path / rel)
        for rel, content in files.items():
            path = repo.path / rel
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        bad = repo.commit(case)

        proc = run_once(repo.path, state)
        assert proc.returncode == 1, f"{case}: {proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr, f"{case}: {proc.stderr[-3000:]}"
        status = read_status(state)
        assert bad in status["quarantined"], case
        assert status["last_applied"]["revision"] == good, case
        assert status["retry"] is None, case
        error = status["last_error"]
        assert error["cause"] == "spec", f"{case}: {error}"
        assert reason in error["message"], f"{case}: {error['message']}"
        at = re.search(rf"^specs/{re.escape(where)}\d+: ", error["message"], re.MULTILINE)
        assert at, f"{case}: {error}"
        assert error["diagnostics"] and error["diagnostics"][0]["file"] == "specs/bad.yaml", case

        # Quarantined means never retried: another pass leaves it alone.
        before = len(read_history(state))
        proc = run_once(repo.path, state)
        assert "Traceback" not in proc.stderr, f"{case}: {proc.stderr[-3000:]}"
        history = read_history(state)
        assert len(history) == before, f"{case}: retried: {history[before:]}"
        [entry] = [e for e in history if e["revision"] == bad]
        assert (entry["result"], entry["stage"]) == ("refused", "spec"), case

    assert host.exec(["cat", APP]).stdout == "good\n"
    assert host.exec(["ls", "/srv/malformed"]).stdout.split() == ["app.conf"]
