"""Helpers for the backups and retention tests: specs for test hosts, the real CLI,
a PostgreSQL container inside a test host, and reading cron entries.

The CLI runs as a subprocess (``.venv/bin/reconcile``), as a user runs it;
assertions about the host go through ``TestHost.exec`` (docker exec), never
through the code under test.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testbed.hosts import TestHost
from testbed.util import wait_until

RECONCILE = Path(sys.executable).with_name("reconcile")
CLI_TIMEOUT = 300.0
PG_CONTAINER = "pg"
PG_USER = "app"
PG_DATABASE = "appdb"


def write_spec(spec_dir: Path, host: TestHost, resources: Mapping[str, Any]) -> Path:
    """A spec with one host ``web`` (the test host) and ``resources``; returns the directory."""
    spec_dir.mkdir(parents=True, exist_ok=True)
    hosts = {"hosts": {"web": {"connect": host.ssh_url, "identity_file": str(host.key_path),
                               "known_hosts": str(host.known_hosts_path)}}}
    (spec_dir / "hosts.yaml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    (spec_dir / "resources.yaml").write_text(yaml.safe_dump(dict(resources), sort_keys=False))
    return spec_dir


def reconcile(*args: str | Path, check_code: int | Sequence[int] | None = 0,
              timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``reconcile ARGS``; ``check_code``: the exit code(s) expected (None: any)."""
    env = {k: v for k, v in os.environ.items() if k != "RECONCILER_SPEC"}
    argv = [str(RECONCILE), *map(str, args)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check_code is not None:
        wanted = [check_code] if isinstance(check_code, int) else list(check_code)
        if proc.returncode not in wanted:
            raise AssertionError(f"`{shlex.join(argv)}` exited {proc.returncode}, expected {wanted}\n"
                                 f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def plan_changes(spec: Path) -> dict[str, dict[str, Any]]:
    """``reconcile plan --output json``: the host's changes by address."""
    proc = reconcile("plan", spec, "--output", "json", "--detailed-exitcode", check_code=(0, 2))
    plan = json.loads(proc.stdout)
    [web] = plan["hosts"]
    assert not web["error"], web["error"]
    return {c["address"]: c for c in web["changes"]}


@dataclass(frozen=True)
class CronEntry:
    schedule: str
    user: str
    command: str


def read_cron_entry(host: TestHost, path: str) -> CronEntry:
    """The one job line of a cron.d file (comments and VAR=value lines skipped)."""
    text = host.exec(["cat", "--", path]).stdout
    jobs = [line for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#") and "=" not in line.split()[0]]
    assert len(jobs) == 1, text
    fields = jobs[0].split()
    if fields[0].startswith("@"):
        return CronEntry(fields[0], fields[1], " ".join(fields[2:]))
    return CronEntry(" ".join(fields[:5]), fields[5], " ".join(fields[6:]))


def run_cron_command(host: TestHost, entry: CronEntry,
                     check: bool = True) -> subprocess.CompletedProcess[str]:
    """Execute the entry's command on the host the way cron does: ``sh -c`` as its user,
    with the cron file's PATH."""
    assert entry.user == "root"
    env = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return host.exec(["env", "-i", env, "sh", "-c", entry.command], check=check)


def files_in(host: TestHost, directory: str) -> list[str]:
    """Names of the entries of a directory (dotfiles included), sorted."""
    out = host.exec(["find", directory, "-mindepth", "1", "-maxdepth", "1", "-printf", "%f\\n"]).stdout
    return sorted(out.splitlines())


# --------------------------------------------------------------------------- PostgreSQL

def start_postgres(host: TestHost, image: str, name: str = PG_CONTAINER) -> str:
    """Load the test bed's postgres image into the host's engine and start a labelled
    container with user ``app`` and database ``appdb``; waits until it accepts queries."""
    host.load_image(image)
    host.exec(["docker", "run", "-d", "--name", name, "--label", "io.reconciler.testbed=1",
               "-e", f"POSTGRES_USER={PG_USER}", "-e", "POSTGRES_PASSWORD=not-a-secret",
               "-e", f"POSTGRES_DB={PG_DATABASE}", image])

    def ready() -> bool:
        probe = host.exec(["docker", "exec", name, "psql", "-U", PG_USER, "-d", PG_DATABASE,
                           "-tAc", "select 1"], check=False, timeout=30)
        return probe.returncode == 0 and probe.stdout.strip() == "1"

    try:
        wait_until("postgres in the test host", ready, timeout=120)
    except Exception:
        print(host.exec(["docker", "logs", name], check=False).stdout)
        raise
    return name


def psql(host: TestHost, sql: str, database: str = PG_DATABASE, container: str = PG_CONTAINER) -> str:
    """Run SQL in the container (local socket, trusted) and return unaligned tuples."""
    return host.exec(["docker", "exec", "-i", container, "psql", "-U", PG_USER, "-d", database,
                      "-v", "ON_ERROR_STOP=1", "-tA"], input=sql).stdout.strip()
