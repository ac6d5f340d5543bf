"""Helpers for the containers tests: writing specs for a test host, running the CLI,
and asking the host's own Docker engine (``docker`` inside the host, via docker exec)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from testbed.hosts import TestHost

REPO = Path(__file__).resolve().parents[3]
RECONCILE = Path(sys.executable).parent / "reconcile"
HOST_NAME = "web"
# Sleeps, and exits on SIGTERM: a bare `sleep` as PID 1 ignores it, so every stop
# (replace, prune) would wait out the 10 s stop timeout.
SLEEP_COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def write_spec(spec_dir: Path, host: TestHost, **kinds: Any) -> Path:
    """A spec directory with one host, ``web`` (the test host), and the given kinds."""
    spec_dir.mkdir(parents=True, exist_ok=True)
    reach = {"connect": host.ssh_url, "identity_file": str(host.key_path),
             "known_hosts": str(host.known_hosts_path)}
    data: dict[str, Any] = {"hosts": {HOST_NAME: reach}}
    data.update({kind: items for kind, items in kinds.items() if items is not None})
    (spec_dir / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return spec_dir


def reconcile(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would; never raises on a non-zero exit."""
    return subprocess.run([str(RECONCILE), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, check=False)


def applied(spec_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``reconcile apply``, which must succeed."""
    result = reconcile("apply", *extra, spec_dir)
    assert result.returncode == 0, f"apply failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def plan_json(spec_dir: Path) -> dict[str, Any]:
    result = reconcile("plan", "--output", "json", spec_dir)
    assert result.returncode == 0, f"plan failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    plan: dict[str, Any] = json.loads(result.stdout)
    return plan


def planned_changes(spec_dir: Path) -> list[dict[str, Any]]:
    return [c for h in plan_json(spec_dir)["hosts"] for c in h["changes"]]


def assert_no_changes(spec_dir: Path) -> None:
    result = reconcile("plan", "--detailed-exitcode", spec_dir)
    assert result.returncode == 0, f"expected an empty plan:\n{result.stdout}\n{result.stderr}"


def inspect(host: TestHost, name: str) -> dict[str, Any] | None:
    """``docker inspect NAME`` on the host's engine; None when there is no such container."""
    result = host.exec(["docker", "inspect", "--type", "container", name], check=False)
    if result.returncode != 0:
        assert "No such" in result.stderr, result.stderr
        return None
    info: dict[str, Any] = json.loads(result.stdout)[0]
    return info


def container_names(host: TestHost) -> set[str]:
    out = host.exec(["docker", "ps", "-a", "--format", "{{.Names}}"]).stdout
    return set(out.split())


def host_snapshot(host: TestHost) -> str:
    """Containers (id, state, config hash), volumes, networks, and /opt: what a plan must not change."""
    return host.exec(
        "docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.State}} {{.Labels}}' | sort; "
        "docker volume ls -q | sort; docker network ls --format '{{.Name}}' | sort; "
        "find /opt -xdev 2>/dev/null | sort").stdout
