"""Helpers for the firewall host tests: the seed's firewall, a listener on 8080, and
whether a published port answers from the test runner (traffic only to 127.0.0.1)."""

from __future__ import annotations

import copy
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from testbed.hosts import TestHost
from tests.support.harness import write_spec

# The ServQR seed: incoming dropped except 22, 80 and 443; outgoing allowed.
SEED_FIREWALL: dict[str, Any] = {
    "policy": {"incoming": "drop", "outgoing": "accept"},
    "rules": [{"port": 22, "comment": "ssh"}, {"port": [80, 443], "comment": "web"}],
}


def seed(**overrides: Any) -> dict[str, Any]:
    firewall = copy.deepcopy(SEED_FIREWALL)
    firewall.update(overrides)
    return firewall


def firewall_spec(tmp_path: Path, host: TestHost, firewall: dict[str, Any] | None) -> Path:
    """A spec directory for one host ``web`` with this firewall (None: no firewall)."""
    resources = {"firewall": firewall} if firewall is not None else {}
    return write_spec(tmp_path / "spec", {"web": host}, resources)


def start_listener(host: TestHost, port: int = 8080) -> None:
    """An HTTP server on ``port`` in the host (a transient unit), answering before return."""
    host.exec(["systemd-run", f"--unit=test-listener-{port}", "python3", "-m", "http.server", str(port),
               "--bind", "0.0.0.0", "--directory", "/tmp"])
    deadline = time.monotonic() + 60
    while host.exec(["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/"], check=False).returncode:
        if time.monotonic() > deadline:
            raise AssertionError(f"the test listener on port {port} did not come up")
        time.sleep(0.3)


def answers(host: TestHost, port: int, *, timeout: float = 3.0) -> bool:
    """Whether an HTTP request from the test runner through the port published for
    ``port`` gets any HTTP response (through the host's firewall)."""
    url = f"http://127.0.0.1:{host.published_port(port)}/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status)
    except urllib.error.HTTPError:
        return True  # an HTTP error status is still an answer
    except (OSError, urllib.error.URLError):
        return False


def eventually_answers(host: TestHost, port: int, *, within: float = 60.0) -> bool:
    """``answers`` with retries, for services that may still be starting."""
    deadline = time.monotonic() + within
    while not answers(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def nft_table(host: TestHost) -> str | None:
    """``nft list table inet reconciler`` on the host, or None when the table is absent."""
    proc = host.exec(["nft", "list", "table", "inet", "reconciler"], check=False)
    return proc.stdout if proc.returncode == 0 else None


def ufw_status(host: TestHost) -> str:
    return host.exec(["ufw", "status", "verbose"]).stdout
