#!/usr/bin/env python3
"""Stand-in for the ServQR Go API (/opt/servqr/platform), for demos and tests.

Behaves like the real backend where a host reconciler can see it: listens on
127.0.0.1:8081 (BIND, PORT), answers GET /health with {"status":"ok"} only when a real
query against PostgreSQL succeeds (psql, with the credentials from the
environment file the unit loads), serves JSON under /api/v1/ (naming the host that answered), logs to stdout.
Standard library only.
"""

import json
import os
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def database_ok() -> tuple[bool, str]:
    env = dict(os.environ, PGPASSWORD=os.environ.get("DB_PASSWORD", ""), PGCONNECT_TIMEOUT="3")
    argv = ["psql", "-h", os.environ.get("DB_HOST", "127.0.0.1"), "-p", os.environ.get("DB_PORT", "5432"),
            "-U", os.environ.get("DB_USER", "servqr"), "-d", os.environ.get("DB_NAME", "servqr"),
            "-tAc", "select 1"]
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr.strip()


class Handler(BaseHTTPRequestHandler):
    server_version = "servqr-backend-standin"

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            ok, detail = database_ok()
            if ok:
                self._send(200, {"status": "ok"})
            else:
                self._send(503, {"status": "error", "detail": detail[-200:]})
        elif self.path.startswith("/api/v1/"):
            # "host": which backend answered (behind a load balancer, there are several).
            self._send(200, {"service": "servqr-backend", "path": self.path, "host": socket.gethostname()})
        else:
            self._send(404, {"error": "not found"})

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stdout.write("backend: " + fmt % args + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8081"))
    ThreadingHTTPServer((os.environ.get("BIND", "127.0.0.1"), port), Handler).serve_forever()
