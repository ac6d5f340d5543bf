"""The horizontal ServQR layout (specs/servqr-ha) on five test hosts, and its checks.

The load balancer is reached from this machine on its published 443 (127.0.0.1);
the hosts reach each other on the Docker network (``hosts.NAME.address`` is each
one's container address). The checks are the seed's Monitoring Points, through the
load balancer, plus what the layout promises: every backend serves, the database
admits the backends only.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testbed.hosts import TestHost
from testbed.servqr import DOMAIN, Check
from testbed.util import REPO_ROOT

SPEC_DIR = REPO_ROOT / "specs" / "servqr-ha"
STANDINS_DIR = REPO_ROOT / "examples" / "servqr-standins"
ROLES = ("lb", "backend-1", "backend-2", "backend-3", "db")


def copy_spec(dest_root: Path) -> Path:
    """specs/servqr-ha and the stand-ins below ``dest_root`` (their relative layout
    kept), in a git work tree on branch main."""
    spec = dest_root / "specs" / "servqr-ha"
    shutil.copytree(SPEC_DIR, spec)
    shutil.copytree(STANDINS_DIR, dest_root / "examples" / "servqr-standins")
    if not (dest_root / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(dest_root)], check=True, capture_output=True)
    return spec


def host_entry(host: TestHost, **extra: Any) -> dict[str, Any]:
    return {"connect": host.ssh_url, "identity_file": str(host.key_path),
            "known_hosts": str(host.known_hosts_path), "address": host.container_ip, **extra}


def point_hosts(spec: Path, hosts: Mapping[str, TestHost]) -> None:
    """Rewrite hosts.yaml for test hosts (keeping each host's groups and the groups,
    vars and comments' meaning of the real file)."""
    path = spec / "hosts.yaml"
    data = yaml.safe_load(path.read_text())
    real = data["hosts"]
    data["hosts"] = {name: host_entry(host, **({"groups": real[name]["groups"]} if name in real and
                                               "groups" in real[name] else {}))
                     for name, host in hosts.items()}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the load balancer's certificate is self-signed
    return ctx


@dataclass(frozen=True)
class Response:
    status: int
    body: str
    headers: Mapping[str, str]


def request(lb: TestHost, path: str, *, port: int = 443, timeout: float = 10) -> Response:
    """GET https://127.0.0.1:<published 443>/path with the site's Host header."""
    url = f"https://127.0.0.1:{lb.published_port(port)}{path}"
    req = urllib.request.Request(url, headers={"Host": DOMAIN})
    try:
        with urllib.request.urlopen(req, context=_context(), timeout=timeout) as resp:  # loopback only
            return Response(resp.status, resp.read().decode(errors="replace"), dict(resp.headers))
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read().decode(errors="replace"), dict(exc.headers))
    except OSError as exc:
        return Response(0, str(exc), {})


def _ok_json(text: str) -> bool:
    try:
        return bool(json.loads(text) == {"status": "ok"})
    except ValueError:
        return False


def _sh(host: TestHost, cmd: str) -> tuple[int, str]:
    proc = host.ssh_exec(cmd, check=False, timeout=60)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def connects(source: TestHost, address: str, port: int, timeout: int = 4) -> bool:
    """Whether ``source`` can open a TCP connection to ``address:port`` (a real one)."""
    proc = source.exec(["timeout", str(timeout), "bash", "-c", f"exec 3<>/dev/tcp/{address}/{port}"],
                       check=False, timeout=timeout + 30)
    return proc.returncode == 0


def health_checks(hosts: Mapping[str, TestHost]) -> list[Check]:
    """The seed's Monitoring Points through the load balancer, and the layout's promises."""
    lb, db = hosts["lb"], hosts["db"]
    backends = {n: h for n, h in hosts.items() if n.startswith("backend-")}
    checks: list[Check] = []
    r = request(lb, "/health")
    checks.append(Check("backend GET /health via the load balancer (https)", r.status == 200 and
                        _ok_json(r.body), f"{r.status} {r.body[:200]}"))
    r = request(lb, "/")
    checks.append(Check("frontend GET / via the load balancer -> 200", r.status == 200, f"{r.status}"))
    checks.append(Check("HSTS on https", "max-age" in r.headers.get("Strict-Transport-Security", ""),
                        str(r.headers.get("Strict-Transport-Security"))))
    rc, out = _sh(db, "docker exec servqr-postgres pg_isready -U servqr")
    checks.append(Check("database pg_isready -U servqr", rc == 0, out))
    rc, out = _sh(lb, "systemctl is-active nginx")
    checks.append(Check("nginx active on the load balancer", out == "active", out))
    for name, backend in backends.items():
        rc, out = _sh(backend, "systemctl is-active servqr-backend servqr-frontend | paste -sd' '")
        checks.append(Check(f"{name}: services active", out == "active active", out))
        checks.append(Check(f"{name}: admitted by the database firewall",
                            connects(backend, db.container_ip, 5432), "no connection to 5432"))
    checks.append(Check("the database firewall refuses the load balancer",
                        not connects(lb, db.container_ip, 5432), "the load balancer reached 5432"))
    first = next(iter(backends.values()))
    checks.append(Check("backends refuse the database host on the API port",
                        not connects(db, first.container_ip, 8081), "the database host reached 8081"))
    return checks


def serving_backends(lb: TestHost, requests: int = 12) -> dict[str, int]:
    """Which backend answered each of ``requests`` API calls through the load balancer
    (the stand-in names its host)."""
    seen: dict[str, int] = {}
    for n in range(requests):
        r = request(lb, f"/api/v1/who?n={n}")
        if r.status != 200:
            seen[f"HTTP {r.status}"] = seen.get(f"HTTP {r.status}", 0) + 1
            continue
        host = json.loads(r.body).get("host", "?")
        seen[host] = seen.get(host, 0) + 1
    return seen
