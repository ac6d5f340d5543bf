"""The CLI as the provider host tests use it: a one-host spec directory, `reconcile`
as a subprocess (never raising on a non-zero exit), and the JSON plan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from testbed.hosts import TestHost

RECONCILE = str(Path(sys.executable).with_name("reconcile"))


def write_spec(spec_dir: Path, host: TestHost, **kinds: Any) -> Path:
    """A spec directory for one host called ``web`` plus the given kinds."""
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "hosts.yaml").write_text(yaml.safe_dump({"hosts": {"web": {
        "connect": host.ssh_url, "identity_file": str(host.key_path),
        "known_hosts": str(host.known_hosts_path)}}}))
    (spec_dir / "resources.yaml").write_text(yaml.safe_dump(kinds, sort_keys=False))
    return spec_dir


def reconcile(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would; never raises on a non-zero exit."""
    return subprocess.run([RECONCILE, *args, "--color", "never"], capture_output=True, text=True,
                          timeout=timeout)


def apply_ok(spec_dir: Path) -> subprocess.CompletedProcess[str]:
    proc = reconcile("apply", str(spec_dir))
    assert proc.returncode == 0, f"apply failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def plan_json(spec_dir: Path) -> tuple[int, dict[str, Any]]:
    """(exit code with --detailed-exitcode, the plan as JSON)."""
    proc = reconcile("plan", str(spec_dir), "--output", "json", "--detailed-exitcode")
    assert proc.returncode in (0, 2), f"plan failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def changes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for h in plan["hosts"] for c in h["changes"]]
