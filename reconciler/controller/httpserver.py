"""The controller's small HTTP endpoint (loopback by default).

* ``GET /healthz``   200 while the loop is alive, 503 when it is stuck.
* ``GET /metrics``   Prometheus text format.
* ``GET /status``    the status as JSON (what ``reconcile status --output json`` prints).
* more ``GET`` routes given as ``routes`` (the status page at ``/``: page.py).
* ``POST /hooks/git`` a push notification. Authenticated like GitHub's webhooks: the
  ``X-Hub-Signature-256`` header is ``sha256=`` + hex HMAC-SHA256 of the raw body
  under the shared secret. Bad or missing signature: 401. Without a configured
  secret the hook is off (404), never open. A good one only triggers a fetch: the
  body is not trusted for what to apply.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from reconciler.controller.metrics import CONTENT_TYPE, Metrics
from reconciler.errors import ReconcilerError

log = structlog.get_logger("reconciler.controller.http")

TEXT = "text/plain; charset=utf-8"
MAX_BODY = 1 << 20  # GitHub caps payloads at 25 MB; we only need to authenticate a push
SIGNATURE_HEADER = "X-Hub-Signature-256"


class HTTPServerError(ReconcilerError):
    pass


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()


Route = Callable[[str, Mapping[str, str]], Response]
"""A GET handler: (query string, request headers with lower-case names) -> response."""


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of a ``sha256=<hex>`` signature header."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


class ControlServer:
    """Serves the endpoints on a daemon thread. ``port`` 0 picks a free port (see ``address``)."""

    def __init__(self, host: str, port: int, *, metrics: Metrics, secret: bytes | None,
                 on_push: Callable[[str], None], healthy: Callable[[], tuple[bool, str]],
                 status: Callable[[], dict[str, Any]], routes: Mapping[str, Route] | None = None) -> None:
        self.metrics = metrics
        self.routes = dict(routes or {})
        self.secret = secret
        self.on_push = on_push
        self.healthy = healthy
        self.status = status
        handler = self._handler_class()
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise HTTPServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="controller-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "reconciler-controller"
            sys_version = ""

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http", client=self.client_address[0], request=format % args)

            def _send(self, status: HTTPStatus | int, body: bytes, content_type: str = TEXT,
                      headers: tuple[tuple[str, str], ...] = ()) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path in server.routes:
                    r = server.routes[path](query, {k.lower(): v for k, v in self.headers.items()})
                    self._send(r.status, r.body, r.content_type, r.headers)
                elif path == "/healthz":
                    ok, detail = server.healthy()
                    code = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
                    self._send(code, (detail + "\n").encode())
                elif path == "/metrics":
                    self._send(HTTPStatus.OK, server.metrics.render(), CONTENT_TYPE)
                elif path == "/status":
                    body = json.dumps(server.status(), indent=2).encode() + b"\n"
                    self._send(HTTPStatus.OK, body, "application/json")
                else:
                    self._send(HTTPStatus.NOT_FOUND, b"not found\n")

            do_HEAD = do_GET

            def do_POST(self) -> None:
                if self.path.split("?", 1)[0] != "/hooks/git":
                    self._send(HTTPStatus.NOT_FOUND, b"not found\n")
                    return
                if server.secret is None:
                    self._send(HTTPStatus.NOT_FOUND, b"the webhook is off: no secret is configured\n")
                    return
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    length = -1
                if length < 0 or length > MAX_BODY:
                    self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"body missing or too large\n")
                    return
                body = self.rfile.read(length)
                if not verify_signature(server.secret, body, self.headers.get(SIGNATURE_HEADER)):
                    log.warning("webhook refused: bad signature", client=self.client_address[0])
                    self._send(HTTPStatus.UNAUTHORIZED, b"bad or missing X-Hub-Signature-256\n")
                    return
                event = self.headers.get("X-GitHub-Event", "push")
                if event == "ping":
                    self._send(HTTPStatus.OK, b"pong\n")
                    return
                server.on_push(event)
                self._send(HTTPStatus.ACCEPTED, b"fetch scheduled\n")

        return Handler
