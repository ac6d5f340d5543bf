"""Timing of the containers provider on a throwaway test host.

    .venv/bin/python -m bench.containers [--containers 20]

Starts one test host, loads the busybox and postgres test images, then measures the
engine in-process (CLI start-up left out):
* the first apply of N containers (busybox, sleeping),
* a no-op plan, and how many Docker API requests it made (one list, one inspect per
  container, one image inspect per distinct image: N + 2),
* an apply after a change to one container (a replace),
* PostgreSQL 15 from nothing to healthy (initdb included), the wait_healthy path, in
  the same apply that prunes the N containers.
Targets (a loaded 2-core machine): no-op plan under 2 s, one-container replace under
5 s, postgres healthy (and N pruned) under 60 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from reconciler.engine import Engine
from reconciler.spec import load_spec
from testbed.hosts import TestHost, start_host
from testbed.images import ensure_image

TARGETS = {"noop_plan": 2.0, "one_container_replace": 5.0, "postgres_to_healthy_and_prune": 60.0}


def write(spec: Path, host: TestHost, containers: list[dict[str, Any]]) -> None:
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "spec.yaml").write_text(yaml.safe_dump({
        "hosts": {"web": {"connect": host.ssh_url, "identity_file": str(host.key_path),
                          "known_hosts": str(host.known_hosts_path)}},
        "containers": containers}))


def sleepers(image: str, n: int, marker: str) -> list[dict[str, Any]]:
    # A shell that exits on SIGTERM: a bare `sleep` as PID 1 ignores it, and every stop
    # would wait out the stop timeout.
    return [{"name": f"worker-{i}", "image": image, "pull": "never",
             "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
             "env": {"MARKER": marker if i == 0 else "v1"}} for i in range(n)]


def run(spec_dir: Path, *, apply: bool) -> tuple[float, int, int]:
    """(seconds, planned changes, Docker API requests) of one plan (and apply) in-process."""
    spec, diags = load_spec(str(spec_dir))
    assert spec is not None, diags.sorted()
    requests = 0

    def count(response: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal requests
        requests += 1
        return response

    started = time.monotonic()
    with Engine(spec) as engine:
        engine.transport("web").docker_client().api.hooks["response"].append(count)
        plan = engine.plan(lock=apply)
        assert not plan.has_errors, [h.error for h in plan.hosts]
        if apply:
            report = engine.apply()
            assert report.ok, report.to_json()
        return time.monotonic() - started, len(plan.changes), requests


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=20)
    args = parser.parse_args()
    host = start_host("bench-containers")
    try:
        busybox, postgres = ensure_image("busybox"), ensure_image("postgres")
        host.load_image(busybox)
        host.load_image(postgres)
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "spec"
            results: dict[str, float] = {}
            write(spec, host, sleepers(busybox, args.containers, "v1"))
            results["first_apply"], created, _ = run(spec, apply=True)
            assert created == args.containers
            results["noop_plan"], pending, requests = run(spec, apply=False)
            assert pending == 0
            write(spec, host, sleepers(busybox, args.containers, "v2"))
            results["one_container_replace"], changed, _ = run(spec, apply=True)
            assert changed == 1
            write(spec, host, [{
                "name": "db", "image": postgres, "pull": "never", "env": {"POSTGRES_PASSWORD": "bench-only"},
                "healthcheck": {"test": "pg_isready -h 127.0.0.1", "interval": "1s", "start_period": "60s"}}])
            results["postgres_to_healthy_and_prune"], _, _ = run(spec, apply=True)
        report = {"containers": args.containers, **{k: round(v, 2) for k, v in results.items()},
                  "noop_plan_docker_requests": requests, "targets": TARGETS,
                  "met": all(results[k] <= v for k, v in TARGETS.items())}
        print(json.dumps(report, indent=2))
        return 0 if report["met"] else 1
    finally:
        host.remove()


if __name__ == "__main__":
    sys.exit(main())
