"""The flagship, scaled: specs/servqr-ha on five fresh test hosts (a load balancer,
three backends, a database server), end to end.

The plan shows the order (database, backends one by one, load balancer); one apply
converges the fleet in that order; the seed's health points pass through the load
balancer (HTTPS on its published 443), every backend serves, the database admits the
backends only (a real connection from the load balancer is refused), a second plan
is empty. One backend stops: the load balancer still serves every request. Then the
controller (`reconcile watch`) follows the repository, and a commit adding a fourth
backend is rolled out by it: the database's firewall, the new backend and the load
balancer's upstream change in that one commit, and the new backend serves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from testbed.hosts import HostFactory, TestHost
from testbed.images import Images
from testbed.servqr import stage_images, summary
from testbed.servqr_ha import copy_spec, health_checks, host_entry, point_hosts, request, serving_backends
from tests.support.harness import RECONCILE, plan_json, reconcile


def wait_healthy(hosts: dict[str, TestHost], timeout: float = 180) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        failing = [c for c in health_checks(hosts) if not c.ok]
        if not failing or time.monotonic() > deadline:
            return [f"{c.name}: {c.detail}" for c in failing]
        time.sleep(3)


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def upstream_servers(lb: TestHost, name: str) -> list[str]:
    """The ``server`` lines of one upstream block of the live site on the load balancer."""
    text = lb.exec(["cat", "/etc/nginx/sites-available/servqr"]).stdout
    block = text.split(f"upstream {name}.servqr {{", 1)[1].split("}", 1)[0]
    return [line.split()[1].rstrip(";") for line in block.splitlines() if line.strip().startswith("server ")]


@pytest.mark.timeout(3600)
def test_servqr_ha_converges_keeps_serving_and_scales_out_by_a_commit(
        host_factory: HostFactory, testbed_images: Images, tmp_path: Path) -> None:
    started = host_factory.many(5, names=["ha-lb", "ha-backend-1", "ha-backend-2", "ha-backend-3", "ha-db"])
    hosts = dict(zip(("lb", "backend-1", "backend-2", "backend-3", "db"), started, strict=True))
    lb, db = hosts["lb"], hosts["db"]
    stage_images(db, testbed_images)
    repo = tmp_path / "repo"
    spec = copy_spec(repo)
    point_hosts(spec, hosts)

    # The plan: everything to create, in the order of the rollout.
    plan = plan_json(spec)
    assert plan["rollout"]["batches"] == [["db"], ["backend-1"], ["backend-2"], ["backend-3"], ["lb"]]
    after = {h["host"]: h["after"] for h in plan["hosts"]}
    assert after["backend-2"] == {"db": ["services:servqr-postgres"]}, after
    assert set(after["lb"]) == {"backend-1", "backend-2", "backend-3"}, after
    text = reconcile("plan", spec, check_code=0).stdout
    assert "Order: db → backend-1, backend-2, backend-3 → lb" in text, text
    assert lb.exec(["test", "-e", "/etc/nginx/sites-available/servqr"], check=False).returncode != 0

    applied = reconcile("apply", spec, check_code=0, timeout=2400)
    assert "Rollout complete: 5 of 5 batches." in applied.stdout, applied.stdout
    failing = wait_healthy(hosts)
    assert not failing, "\n".join(failing)
    backends = {h.name: n for n, h in hosts.items() if n.startswith("backend-")}
    expected = [f"{hosts[n].container_ip}:8081" for n in sorted(backends.values())]
    assert upstream_servers(lb, "backend") == expected
    served = serving_backends(lb, 12)
    assert set(served) == set(backends), served
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)

    # One backend stops: the load balancer goes on serving, every request.
    stopped = hosts["backend-2"]
    stopped.exec(["systemctl", "stop", "servqr-frontend", "servqr-backend"])
    for _ in range(10):
        health = request(lb, "/health")
        assert health.status == 200, health
        page = request(lb, "/")
        assert page.status == 200, page
    served = serving_backends(lb, 8)
    assert stopped.name not in served and all(h in backends for h in served), served
    drift = plan_json(spec)
    drifted = {h["host"]: sorted(c["address"] for c in h["changes"]) for h in drift["hosts"] if h["changes"]}
    assert drifted == {"backend-2": ["services:servqr-backend", "services:servqr-frontend"]}, drifted
    reconcile("apply", spec, check_code=0, timeout=900)
    failing = wait_healthy(hosts)
    assert not failing, "\n".join(failing)

    # GitOps: the controller follows the repository; a commit adds a fourth backend.
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "servqr-ha as deployed")
    state = tmp_path / "controller-state"
    log_path = tmp_path / "controller.log"
    log = log_path.open("wb")
    controller = subprocess.Popen(
        [str(RECONCILE), "watch", "--repo", str(repo), "--branch", "main", "--path", "specs/servqr-ha",
         "--state-dir", str(state), "--interval", "5s", "--drift-interval", "600s", "--listen", "off",
         "--log-format", "json"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        fourth = host_factory("ha-backend-4")
        hosts["backend-4"] = fourth
        backends[fourth.name] = "backend-4"
        data = yaml.safe_load((spec / "hosts.yaml").read_text())
        data["hosts"]["backend-4"] = host_entry(fourth)
        (spec / "hosts.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        git(repo, "commit", "-q", "-am", "servqr-ha: a fourth backend")
        sha = git(repo, "rev-parse", "HEAD")
        deadline = time.monotonic() + 1500
        while True:
            status_file = state / "status.json"
            status = json.loads(status_file.read_text()) if status_file.exists() else {}
            if (status.get("last_applied") or {}).get("revision") == sha:
                break
            error = status.get("last_error") or {}
            assert error.get("revision") != sha, f"the commit failed: {error}\n{tail(log_path)}"
            assert controller.poll() is None, "the controller exited:\n" + tail(log_path)
            assert time.monotonic() < deadline, "the commit was not applied in time:\n" + tail(log_path)
            time.sleep(3)
        history = subprocess.run([str(RECONCILE), "history", "--state-dir", str(state), "--output", "json",
                                  "--limit", "0"], capture_output=True, text=True, check=True).stdout
        [entry] = [e for e in json.loads(history) if e["revision"] == sha and e["cause"] == "commit"]
        assert entry["result"] == "applied", entry
        changed = {c["host"] for c in entry["changes"]}
        assert {"db", "backend-4", "lb"} <= changed, changed
        rolled = [json.loads(line) for line in log_path.read_text().splitlines()
                  if line.startswith("{") and '"rolling out"' in line]
        assert any(r.get("revision") == sha[:12] and ["backend-4"] in r["batches"] for r in rolled), rolled
    finally:
        os.killpg(controller.pid, signal.SIGTERM)
        try:
            controller.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(controller.pid, signal.SIGKILL)
            controller.wait()
        log.close()

    assert upstream_servers(lb, "backend")[-1] == f"{fourth.container_ip}:8081"
    assert len(upstream_servers(lb, "frontend")) == 4
    failing = wait_healthy(hosts)
    assert not failing, "\n".join(failing)
    served = serving_backends(lb, 16)
    assert fourth.name in served and set(served) <= set(backends), served
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
    print(summary(health_checks(hosts)))
