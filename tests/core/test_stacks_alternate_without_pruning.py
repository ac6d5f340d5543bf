"""Two specs on one host, a ServQR-like application stack and a monitoring stack with
resources of the same kinds, applied alternately for ten rounds: neither prunes nor
changes what the other owns, and nothing flaps (every apply after the first finds
nothing to do, no service restarts, secrets keep their values). Each stack has its own
inventory file, and the host-wide owner index names one stack per object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.core.stacks_support import monitoring, served, servqr, stacks_of, starts, write
from tests.support.harness import cat, reconcile

ROUNDS = 10


@pytest.mark.timeout(1500)
def test_two_stacks_alternate_without_pruning_or_flapping(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    app = write(tmp_path / "servqr", host, servqr())  # stack "servqr": the directory's name
    mon = write(tmp_path / "mon", host, monitoring())  # stack "monitoring": explicit

    reconcile("apply", app, check_code=0)
    reconcile("apply", mon, check_code=0)
    assert served(host, 80) == "servqr\n" and served(host, 8080) == "up 1\n"
    stacks = stacks_of(host)
    assert stacks["services:servqr-api"] == "servqr" and stacks["nginx_sites:servqr"] == "servqr"
    assert stacks["services:node-exporter-lite"] == "monitoring" and stacks["users:monitor"] == "monitoring"
    assert set(stacks.values()) == {"servqr", "monitoring"}
    inventories = {s: json.loads(cat(host, f"/var/lib/reconciler/stacks/{s}.json"))["objects"]
                   for s in ("servqr", "monitoring")}
    assert set(inventories["servqr"]).isdisjoint(inventories["monitoring"])
    assert set(inventories["servqr"]) | set(inventories["monitoring"]) == set(stacks)
    started = {u: starts(host, u) for u in ("servqr-api", "node-exporter-lite")}
    secrets = {p: cat(host, p) for p in ("/opt/servqr/.db_password", "/opt/monitoring/.token")}

    for round_no in range(ROUNDS):
        for spec in (app, mon):
            proc = reconcile("apply", spec, check_code=0)
            assert "No changes." in proc.stdout, f"round {round_no}, {spec.name}:\n{proc.stdout}"
    for spec in (app, mon):
        reconcile("plan", spec, "--detailed-exitcode", check_code=0)

    assert served(host, 80) == "servqr\n" and served(host, 8080) == "up 1\n"
    assert {u: starts(host, u) for u in started} == started  # never restarted
    assert {p: cat(host, p) for p in secrets} == secrets
    assert stacks_of(host) == stacks
