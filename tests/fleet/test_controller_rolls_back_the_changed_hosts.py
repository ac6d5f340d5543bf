"""The controller rolls a commit out with the spec's rollout (serial 1) on three real
hosts: the database host first, then one web host at a time, probing each batch.
When a batch does not become healthy, the rollout stops and only the hosts the
commit changed are rolled back to the last good revision; the host the rollout never
reached keeps its files untouched (same content, same modification time)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from testbed.hosts import HostFactory, TestHost
from tests.controller.support import LocalRepo, WatchProcess, read_history, read_status, wait_for
from tests.fleet.support import exists, fleet_entry

ROLLOUT = {"serial": 1, "max_fail_percentage": 0,
           "health": {"grace": "5s", "interval": "1s",
                      "checks": [{"name": "not-broken", "hosts": ["web"],
                                  "command": ["test", "!", "-e", "/etc/fleet/broken"]}]}}


def body(version: str, broken: bool = False) -> dict[str, object]:
    files: list[dict[str, object]] = [
        {"path": "/etc/fleet/db.conf", "hosts": ["db"], "content": f"{version}\n"},
        {"path": "/etc/fleet/app.conf", "hosts": ["web"], "content": f"{version} db=${{host:db/address}}\n",
         "depends_on": ["db/files:/etc/fleet/db.conf"]},
    ]
    if broken:
        files.append({"path": "/etc/fleet/broken", "hosts": ["web"], "content": "a bad release\n"})
    return {"groups": {"web": {"hosts": ["web-*"]}}, "rollout": ROLLOUT, "files": files}


def mtime(host: TestHost, path: str) -> str:
    return host.exec(["stat", "-c", "%Y.%y", path]).stdout.strip()


@pytest.mark.timeout(900)
def test_a_failed_batch_rolls_back_only_the_hosts_it_changed(host_factory: HostFactory,
                                                             tmp_path: Path) -> None:
    db, web1, web2 = host_factory.many(3, names=["rb-db", "rb-web-1", "rb-web-2"])
    repo = LocalRepo(tmp_path / "repo")
    repo.write("specs/hosts.yaml", yaml.safe_dump({"hosts": {
        "db": fleet_entry(db), "web-1": fleet_entry(web1), "web-2": fleet_entry(web2)}}))
    repo.write("specs/fleet.yaml", yaml.safe_dump(body("v1")))
    good = repo.commit("fleet v1")
    state = tmp_path / "state"
    with WatchProcess(repo.path, state, "--interval", "2s", "--drift-interval", "600s", "--listen", "off",
                      "--health-grace", "10s") as watch:
        wait_for("v1 applied", lambda: (read_status(state).get("last_applied") or {}).get("revision") == good,
                 timeout=300, interval=1, explain=watch.log)
        assert web2.exec(["cat", "/etc/fleet/app.conf"]).stdout == f"v1 db={db.container_ip}\n"
        before = mtime(web2, "/etc/fleet/app.conf")

        repo.write("specs/fleet.yaml", yaml.safe_dump(body("v2", broken=True)))
        bad = repo.commit("fleet v2: a release that breaks the web hosts")
        entry = wait_for("v2 rolled back", lambda: next(
            (e for e in read_history(state)
             if e.get("revision") == bad and e.get("result") != "retrying"), None),
            timeout=300, interval=1, explain=watch.log)
        rolled = [json.loads(line) for line in watch.log().splitlines()
                  if line.startswith("{") and '"rolling back"' in line]

    assert entry["result"] == "rolled-back", entry
    assert "batch 2 of 3 did not become healthy on web-1" in entry["error"], entry
    assert entry["rollback"]["ok"] is True, entry["rollback"]
    assert {c["host"] for c in entry["rollback"]["changes"]} == {"db", "web-1"}, entry["rollback"]
    assert rolled and rolled[-1]["hosts"] == ["db", "web-1"], rolled
    # The changed hosts are back on v1; the broken file the commit created is gone.
    assert db.exec(["cat", "/etc/fleet/db.conf"]).stdout == "v1\n"
    assert web1.exec(["cat", "/etc/fleet/app.conf"]).stdout == f"v1 db={db.container_ip}\n"
    assert not exists(web1, "/etc/fleet/broken")
    # The rollout never reached web-2.
    assert not exists(web2, "/etc/fleet/broken")
    assert mtime(web2, "/etc/fleet/app.conf") == before
    status = read_status(state)
    assert status["last_applied"]["revision"] == good
    assert bad in status["quarantined"]
