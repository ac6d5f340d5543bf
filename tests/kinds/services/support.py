"""Helpers for the services host tests: spec files, the CLI as a subprocess, and what
systemd on the test host says (read with ``docker exec``, for assertions only)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

from testbed.hosts import TestHost

# Re-exported: the tests import the CLI helpers from here.
from tests.support.cli import RECONCILE as RECONCILE
from tests.support.cli import apply_ok as apply_ok
from tests.support.cli import changes as changes
from tests.support.cli import plan_json as plan_json
from tests.support.cli import reconcile as reconcile
from tests.support.cli import write_spec as write_spec

HOST_TIMEOUT = 900  # per test: a host boot plus a few applies on a loaded 2-core machine












def assert_no_changes(spec_dir: Path) -> None:
    code, plan = plan_json(spec_dir)
    assert code == 0 and changes(plan) == [], json.dumps(changes(plan), indent=2)


def http_service(name: str, port: int, **extra: Any) -> dict[str, Any]:
    """A service running python3's http.server on the host's 127.0.0.1:port, with an
    http health check."""
    return {"name": name, "description": f"test web server {name}",
            "exec": ["/usr/bin/python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            "working_directory": "/srv",
            "health": {"http": f"http://127.0.0.1:{port}/", "timeout": 30}, **extra}


def show(host: TestHost, unit: str, *props: str) -> dict[str, str]:
    """``systemctl show -p ...`` on the host, as a dict."""
    out = host.exec(["systemctl", "show", "-p", ",".join(props), f"{unit}.service"]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def is_active(host: TestHost, unit: str) -> str:
    return host.exec(["systemctl", "is-active", f"{unit}.service"], check=False).stdout.strip()


def is_enabled(host: TestHost, unit: str) -> str:
    return host.exec(["systemctl", "is-enabled", f"{unit}.service"], check=False).stdout.strip()


def journal_cursor(host: TestHost) -> str:
    """The journal's current position, to count what happens after it."""
    out = host.exec("journalctl -n 0 --show-cursor --no-pager").stdout
    return out.strip().rsplit("-- cursor: ", 1)[-1]


def starts_since(host: TestHost, unit: str, cursor: str, settle: float = 1.5) -> int:
    """How many times systemd logged "Started UNIT" after ``cursor``. Waits ``settle``
    seconds first: journald receives PID 1's messages asynchronously."""
    time.sleep(settle)
    out = host.exec(f"journalctl --after-cursor={shlex.quote(cursor)} -u {shlex.quote(unit)}.service "
                    "-o cat --no-pager").stdout
    return sum(1 for line in out.splitlines() if line.startswith(f"Started {unit}.service"))


def file_digest(host: TestHost, path: str) -> str | None:
    proc = host.exec(["sha256sum", "--", path], check=False)
    return proc.stdout.split()[0] if proc.returncode == 0 else None
