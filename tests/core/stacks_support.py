"""Two specs for one host, for the stack tests: a ServQR-like application stack and a
monitoring stack with resources of the same kinds (users, directories, secrets, files,
services, nginx sites), and what the host says about them (for assertions)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from testbed.hosts import TestHost
from tests.support.harness import host_entry, owners


def servqr(shared: bool = True) -> dict[str, Any]:
    files = [
        {"path": "/opt/servqr/.env", "content": "DB_PASSWORD=${secret:db_password}\nPORT=8201\n",
         "owner": "root", "group": "servqr", "mode": "0640"},
        {"path": "/opt/servqr/www/index.html", "content": "servqr\n"},
    ]
    if shared:
        files.append({"path": "/etc/servqr/shared.conf", "content": "owner=servqr\n"})
    return {
        "users": [{"name": "servqr", "home": "/opt/servqr"}],
        "directories": [{"path": "/opt/servqr"}, {"path": "/opt/servqr/www"},
                        {"path": "/etc/servqr"}],
        "secrets": [{"name": "db_password", "path": "/opt/servqr/.db_password", "length": 32}],
        "files": files,
        "services": [{"name": "servqr-api", "user": "servqr", "working_directory": "/opt/servqr/www",
                      "exec": ["/usr/bin/python3", "-m", "http.server", "8201", "--bind", "127.0.0.1"],
                      "health": {"http": "http://127.0.0.1:8201/", "timeout": 30},
                      "depends_on": ["files:/opt/servqr/www/index.html"]}],
        "nginx_sites": [{"name": "servqr", "listen": [80], "server_names": ["servqr.test"],
                         "upstreams": {"api": {"servers": ["127.0.0.1:8201"]}},
                         "locations": [{"path": "/", "proxy_pass": "api"}],
                         "depends_on": ["services:servqr-api"]}],
    }


def monitoring(extra_files: Sequence[dict[str, Any]] = (), adopt: Sequence[str] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "stack": "monitoring",
        "users": [{"name": "monitor", "home": "/opt/monitoring"}],
        "directories": [{"path": "/opt/monitoring"}, {"path": "/opt/monitoring/metrics"}],
        "secrets": [{"name": "scrape_token", "path": "/opt/monitoring/.token", "length": 24}],
        "files": [{"path": "/opt/monitoring/metrics/index.html", "content": "up 1\n"},
                  {"path": "/opt/monitoring/scrape.env", "content": "TOKEN=${secret:scrape_token}\n",
                   "mode": "0600"}, *extra_files],
        "services": [{"name": "node-exporter-lite", "user": "monitor",
                      "working_directory": "/opt/monitoring/metrics",
                      "exec": ["/usr/bin/python3", "-m", "http.server", "9101", "--bind", "127.0.0.1"],
                      "health": {"http": "http://127.0.0.1:9101/", "timeout": 30},
                      "depends_on": ["files:/opt/monitoring/metrics/index.html"]}],
        "nginx_sites": [{"name": "monitoring", "listen": [8080],
                         "upstreams": {"exporter": {"servers": ["127.0.0.1:9101"]}},
                         "locations": [{"path": "/", "proxy_pass": "exporter"}],
                         "depends_on": ["services:node-exporter-lite"]}],
    }
    if adopt:
        spec["adopt"] = list(adopt)
    return spec


def write(spec_dir: Path, host: TestHost, resources: dict[str, Any]) -> Path:
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "hosts.yaml").write_text(yaml.safe_dump({"hosts": {"web": host_entry(host)}}))
    (spec_dir / "spec.yaml").write_text(yaml.safe_dump(resources, sort_keys=False))
    return spec_dir


def served(host: TestHost, port: int, name: str = "servqr.test") -> str:
    """What nginx on the host serves for ``name`` on ``port`` (curl inside the host)."""
    return host.exec(["curl", "-sf", "--max-time", "10", "-H", f"Host: {name}", f"http://127.0.0.1:{port}/"],
                     check=False).stdout


def starts(host: TestHost, unit: str) -> int:
    out = host.exec(f"journalctl -u {unit}.service -o cat --no-pager").stdout
    return sum(1 for line in out.splitlines() if line.startswith(f"Started {unit}.service"))


def stacks_of(host: TestHost) -> dict[str, str]:
    return {address: entry["stack"] for address, entry in owners(host).items()}


