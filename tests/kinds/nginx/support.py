"""Helpers for the nginx host tests: spec files, the CLI as a subprocess, upstreams
and curl inside the test host (traffic stays on the host's own 127.0.0.1)."""

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

# A tiny upstream that answers every GET with its name and the request as it arrived,
# so tests can see which backend served and what nginx forwarded.
ECHO_UPSTREAM = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = sys.argv[2]

class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"upstream": NAME, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
"""












def start_echo_upstream(host: TestHost, port: int, name: str) -> None:
    """An echo server on the host's 127.0.0.1:port, as a transient systemd unit."""
    host.exec(["sh", "-c", "cat > /usr/local/bin/echo-upstream.py"], input=ECHO_UPSTREAM)
    host.exec(["systemd-run", f"--unit=echo-upstream-{port}", "python3", "/usr/local/bin/echo-upstream.py",
               str(port), name])
    wait_until(lambda: host.exec(["curl", "-sf", f"http://127.0.0.1:{port}/"], check=False).returncode == 0,
               f"echo upstream {name} on port {port}")


def curl(host: TestHost, url: str, *args: str) -> tuple[int, str]:
    """(HTTP status, body) of a request made inside the host."""
    argv = ["curl", "-s", "-o", "/dev/stderr", "-w", "%{http_code}", "--max-time", "10", *args, url]
    proc = host.exec(argv, check=False)
    return int(proc.stdout.strip() or 0), proc.stderr


def curl_https(host: TestHost, server_name: str, path: str, *args: str) -> tuple[int, str]:
    """HTTPS to the host's own nginx with SNI and Host set to ``server_name`` (-k unless
    the caller passes --cacert to verify the certificate)."""
    verify = [] if "--cacert" in args else ["-k"]
    resolve = f"{server_name}:443:127.0.0.1"
    return curl(host, f"https://{server_name}{path}", "--resolve", resolve, *verify, *args)


def echo_of(body: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return data


def file_digest(host: TestHost, path: str) -> str:
    return host.exec(["sha256sum", path]).stdout.split()[0]


def nginx_pids(host: TestHost) -> tuple[str, list[str]]:
    """(master pid, sorted worker pids): new workers mean a reload happened."""
    master = host.exec(["cat", "/run/nginx.pid"]).stdout.strip()
    workers = host.exec(["pgrep", "-P", master], check=False).stdout.split()
    return master, sorted(workers)


def etc_nginx_snapshot(host: TestHost) -> str:
    """Every file and link under /etc/nginx with content hash or target, plus nginx's pids."""
    script = ("cd /etc/nginx && find . -xdev \\( -type f -o -type l \\) -printf '%p %y %l\\n' | sort && "
              "find . -xdev -type f -print0 | sort -z | xargs -0 sha256sum && "
              "ls -a /run/reconciler 2>/dev/null")
    return host.exec(script, check=False).stdout + repr(nginx_pids(host))


def wait_until(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def openssl_pair(host: TestHost, cert: str, key: str, common_name: str) -> None:
    """A certificate and key made by the test itself, with openssl on the host."""
    host.exec(f"mkdir -p {shlex.quote(str(Path(cert).parent))} {shlex.quote(str(Path(key).parent))} && "
              f"openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN={shlex.quote(common_name)} "
              f"-addext subjectAltName=DNS:{shlex.quote(common_name)} "
              f"-keyout {shlex.quote(key)} -out {shlex.quote(cert)} 2>/dev/null")
