"""Timing of the nginx_sites provider on a throwaway test host.

    .venv/bin/python -m bench.nginx_sites [--sites 30]

Starts one test host, then measures the engine in-process (CLI start-up, which is
the same for every kind, is left out):
* the first apply of N proxied TLS sites (N self-signed key pairs, N `nginx -t`, one reload),
* a no-op plan, and how many remote commands it ran (the observation is one command
  for all N sites, so this must not grow with N),
* an apply after a change to one site (one `nginx -t`, one reload).
Targets (a loaded 2-core machine): no-op plan under 1.5 s, one-site change under 4 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from reconciler.engine import Engine
from reconciler.spec import load_spec
from testbed.hosts import TestHost, start_host

TARGETS = {"noop_plan": 1.5, "one_site_change": 4.0}


def write(spec: Path, host: TestHost, sites: int, marker: str) -> None:
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "hosts.yaml").write_text(yaml.safe_dump({"hosts": {"web": {
        "connect": host.ssh_url, "identity_file": str(host.key_path),
        "known_hosts": str(host.known_hosts_path)}}}))
    (spec / "sites.yaml").write_text(yaml.safe_dump({"nginx_sites": [{
        "name": f"site{n}", "server_names": [f"site{n}.test"],
        "tls": {"self_signed": True, "redirect_http": True},
        "upstreams": {"app": {"servers": [f"127.0.0.1:{9000 + n}"]}},
        "locations": [{"path": "/", "proxy_pass": "app"},
                      {"path": "/api/", "proxy_pass": "app", "rate_limit": {"requests_per_minute": 600}}],
        "extra": [f"add_header X-Bench {marker if n == 0 else 'v1'}"],
    } for n in range(sites)]}))


def run(spec_dir: Path, *, apply: bool) -> tuple[float, int, int]:
    """(seconds, planned changes, remote commands) of one plan (and apply) in-process."""
    spec, diags = load_spec(str(spec_dir))
    assert spec is not None, diags.sorted()
    started = time.monotonic()
    with Engine(spec) as engine:
        plan = engine.plan(lock=apply)
        assert not plan.has_errors, [h.error for h in plan.hosts]
        if apply:
            report = engine.apply()
            assert report.ok, report.to_json()
        return time.monotonic() - started, len(plan.changes), sum(engine.commands_run().values())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=30)
    args = parser.parse_args()
    host = start_host("bench-nginx")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec = Path(tmp) / "spec"
            write(spec, host, args.sites, "v1")
            results: dict[str, float] = {}
            results["first_apply"], created, _ = run(spec, apply=True)
            assert created == args.sites
            results["noop_plan"], pending, commands = run(spec, apply=False)
            assert pending == 0
            write(spec, host, args.sites, "v2")
            results["one_site_change"], changed, _ = run(spec, apply=True)
            assert changed == 1
        report = {"sites": args.sites, **{k: round(v, 2) for k, v in results.items()},
                  "noop_plan_remote_commands": commands,
                  "targets": TARGETS,
                  "met": all(results[k] <= v for k, v in TARGETS.items())}
        print(json.dumps(report, indent=2))
        return 0 if report["met"] else 1
    finally:
        host.remove()


if __name__ == "__main__":
    sys.exit(main())
