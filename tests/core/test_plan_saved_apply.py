"""``plan --out FILE`` then ``apply FILE`` applies exactly that plan, from any directory;
it refuses, changing nothing, when the spec or the host changed since the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import cat, exists, reconcile, write_spec

FILES = [{"path": "/srv/saved/a.conf", "content": "a\n"}, {"path": "/srv/saved/b.conf", "content": "b\n"}]


@pytest.mark.timeout(300)
def test_apply_saved_plan_applies_exactly_it(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    write_spec(tmp_path / "spec", {"web": host}, {"files": FILES})
    planned_in = tmp_path / "here"
    planned_in.mkdir()
    # A relative spec path and a relative plan file: the plan must not depend on the directory.
    reconcile("plan", "../spec", "--out", "saved.json", cwd=planned_in, check_code=0)
    saved = json.loads((planned_in / "saved.json").read_text())
    assert saved["spec_path"] == str(tmp_path / "spec")
    assert [c["address"] for c in saved["hosts"][0]["changes"]] == ["files:/srv/saved/a.conf",
                                                                    "files:/srv/saved/b.conf"]
    assert not exists(host, "/srv/saved")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = reconcile("apply", planned_in / "saved.json", "--output", "json", cwd=elsewhere, check_code=0)
    result = json.loads(proc.stdout)
    assert result["plan"]["hosts"][0]["changes"] == saved["hosts"][0]["changes"]
    assert [(o["address"], o["status"]) for o in result["apply"]["hosts"][0]["outcomes"]] == [
        ("files:/srv/saved/a.conf", "applied"), ("files:/srv/saved/b.conf", "applied")]
    assert cat(host, "/srv/saved/a.conf") == "a\n" and cat(host, "/srv/saved/b.conf") == "b\n"


@pytest.mark.timeout(300)
def test_saved_plan_is_refused_when_the_spec_changed(fresh_host: TestHost, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec", {"web": fresh_host}, {"files": FILES})
    plan_file = tmp_path / "plan.json"
    reconcile("plan", spec, "--out", plan_file, check_code=0)
    more = [*FILES, {"path": "/srv/saved/c.conf", "content": "c\n"}]
    write_spec(spec, {"web": fresh_host}, {"files": more})

    proc = reconcile("apply", plan_file, check_code=1)
    assert proc.stderr.splitlines()[-1] == (
        f"error: refusing to apply {plan_file}: the spec changed since the plan was made; "
        "run `reconcile plan` again")
    assert not exists(fresh_host, "/srv/saved")


@pytest.mark.timeout(300)
def test_saved_plan_is_refused_when_the_host_changed(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, {"files": FILES})
    reconcile("apply", spec, check_code=0)
    host.exec("chmod 0600 /srv/saved/a.conf")
    plan_file = tmp_path / "plan.json"
    reconcile("plan", spec, "--out", plan_file, check_code=0)  # repairs a.conf's mode

    host.exec("echo 'changed meanwhile' > /srv/saved/b.conf")
    proc = reconcile("apply", plan_file, check_code=1)
    assert proc.stderr.splitlines()[-1] == (
        f"error: refusing to apply {plan_file}: host web changed since the plan was made; "
        "run `reconcile plan` again")
    assert cat(host, "/srv/saved/b.conf") == "changed meanwhile\n"
    assert host.exec("stat -c %a /srv/saved/a.conf").stdout.strip() == "600"

    # A host that changes in a way the plan does not touch is still "changed": the plan
    # was made against a state that no longer exists.
    host.exec("echo b > /srv/saved/b.conf")
    reconcile("apply", plan_file, check_code=0)
    assert host.exec("stat -c %a /srv/saved/a.conf").stdout.strip() == "644"


@pytest.mark.timeout(120)
def test_a_file_that_is_not_a_plan_is_not_taken_for_one(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_text(json.dumps({"format_version": 99, "spec_path": str(tmp_path),
                                                    "spec_digest": "x", "hosts": []}))
    (tmp_path / "spec.yaml").write_text("hosts:\n  web: {connect: local}\n")
    proc = reconcile("apply", tmp_path / "plan.json", check_code=1)
    assert "refusing to apply" in proc.stderr
    assert "the saved plan has format 99, this reconcile reads 1; make a new plan" in proc.stderr


@pytest.mark.timeout(300)
def test_saved_plan_keeps_its_replace_requests(fresh_host: TestHost, tmp_path: Path) -> None:
    """A plan made with --replace is applied as made: the saved replacement happens."""
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, {
        "secrets": [{"name": "token", "path": "/srv/saved/token"}],
        "files": [{"path": "/srv/saved/token.env", "content": "TOKEN=${secret:token}\n"}],
    })
    reconcile("apply", spec, check_code=0)
    before = cat(host, "/srv/saved/token")
    plan_file = tmp_path / "plan.json"
    reconcile("plan", spec, "--replace", "secrets:token", "--out", plan_file, check_code=0)
    reconcile("apply", plan_file, check_code=0)
    after = cat(host, "/srv/saved/token")
    assert after != before
    assert cat(host, "/srv/saved/token.env") == f"TOKEN={after}\n"
