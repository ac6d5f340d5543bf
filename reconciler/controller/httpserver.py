"""The controller's small HTTP endpoint (loopback by default: ``127.0.0.1:9109``).

* ``GET /healthz``   200 while the loop is alive, 503 when it is stuck.
* ``GET /metrics``   Prometheus text format.
* ``GET /status``    the status as JSON (what ``reconcile status --output json`` prints).
* more ``GET`` routes given as ``routes`` (the status page at ``/``: page.py).
* ``POST /hooks/git`` a push notification. Authenticated like GitHub's webhooks: the
  ``X-Hub-Signature-256`` header is ``sha256=`` + hex HMAC-SHA256 of the raw body
  under the shared secret. Bad or missing signature: 401. Without a configured
  secret the hook is off (404), never open. A good one only triggers a fetch: the
  body is not trusted for what to apply.

Hardened against clients that misbehave: each connection has ``request_deadline``
seconds to send its whole request (request line, headers and body; a *total*
deadline, so a "slowloris" client dripping a byte at a time cannot hold a thread
forever), at most ``max_connections`` are served at once, and when all are taken a
new connection evicts the oldest one still sending its request (so slow clients
cannot lock out others); if every slot is busy answering, the newcomer gets 503.
A client that disconnects early is one log line, never a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import socket
import sys
import threading
import time
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
REQUEST_DEADLINE = 10.0
"""Seconds a client has to send its whole request."""
WRITE_TIMEOUT = 10.0
"""Seconds one send of the response may block (a client that stops reading)."""
MAX_CONNECTIONS = 32
"""Connections served at once; the controller's endpoint has few, well-behaved clients."""
BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n"
        b"Connection: close\r\n\r\ntoo many requests\n")


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


class _DeadlineReader(io.RawIOBase):
    """The connection's reading side with one deadline for everything read through it:
    before each ``recv`` the socket timeout is set to the time left."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request was not complete within its deadline")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


@dataclass
class _Connection:
    sock: socket.socket
    client: str
    started: float
    reading: bool = True  # still sending its request (evictable)


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a connection cap, eviction of slow senders and one log
    line (not a traceback) per failed connection."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 max_connections: int) -> None:
        self.max_connections = max_connections
        self._active: dict[int, _Connection] = {}
        self._active_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        client = str(client_address[0]) if isinstance(client_address, tuple) else str(client_address)
        victim: _Connection | None = None
        with self._active_lock:
            full = len(self._active) >= self.max_connections
            if full:
                slow = [c for c in self._active.values() if c.reading]
                if slow:
                    victim = min(slow, key=lambda c: c.started)
                    victim.reading = False  # evicted once
            if not full or victim is not None:
                self._active[id(request)] = _Connection(request, client, time.monotonic())
        if full and victim is None:
            self._refuse(request, client)
            return
        if victim is not None:
            log.info("http connection evicted: too slow sending its request, and all slots taken",
                     client=victim.client, seconds=round(time.monotonic() - victim.started, 1))
            with contextlib.suppress(OSError):
                victim.sock.shutdown(socket.SHUT_RDWR)  # its thread sees EOF and ends
        super().process_request(request, client_address)

    def _refuse(self, request: socket.socket, client: str) -> None:
        log.warning("http connection refused: every slot is busy", client=client,
                    connections=self.max_connections)
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(BUSY)
        self.shutdown_request(request)

    def responding(self, request: Any) -> None:
        """The request has been read; the connection is no longer evictable."""
        with self._active_lock:
            conn = self._active.get(id(request))
            if conn is not None:
                conn.reading = False

    def shutdown_request(self, request: Any) -> None:
        with self._active_lock:
            self._active.pop(id(request), None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        client = client_address[0] if isinstance(client_address, tuple) else client_address
        if isinstance(exc, OSError | EOFError):  # reset, broken pipe, timeout: the client's doing
            log.info("http client went away", client=str(client), error=f"{type(exc).__name__}: {exc}")
        else:
            log.error("http request failed", client=str(client), error=f"{type(exc).__name__}: {exc}")


class ControlServer:
    """Serves the endpoints on daemon threads. ``port`` 0 picks a free port (see ``address``)."""

    def __init__(self, host: str, port: int, *, metrics: Metrics, secret: bytes | None,
                 on_push: Callable[[str], None], healthy: Callable[[], tuple[bool, str]],
                 status: Callable[[], dict[str, Any]], routes: Mapping[str, Route] | None = None,
                 request_deadline: float = REQUEST_DEADLINE, max_connections: int = MAX_CONNECTIONS) -> None:
        self.metrics = metrics
        self.routes = dict(routes or {})
        self.secret = secret
        self.on_push = on_push
        self.healthy = healthy
        self.status = status
        self.request_deadline = request_deadline
        handler = self._handler_class()
        try:
            self.httpd = _Server((host, port), handler, max_connections=max_connections)
        except OSError as exc:
            raise HTTPServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
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

            def setup(self) -> None:
                super().setup()
                deadline = time.monotonic() + server.request_deadline
                self.rfile.close()  # the plain makefile() reader, replaced by one with a deadline
                self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http", client=self.client_address[0], request=format % args)

            def log_error(self, format: str, *args: Any) -> None:
                # http.server reports timeouts and bad requests here: one line each.
                log.info("http request refused", client=self.client_address[0], reason=format % args)

            def _send(self, status: HTTPStatus | int, body: bytes, content_type: str = TEXT,
                      headers: tuple[tuple[str, str], ...] = ()) -> None:
                server.httpd.responding(self.connection)
                self.connection.settimeout(WRITE_TIMEOUT)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                server.httpd.responding(self.connection)
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
                server.httpd.responding(self.connection)
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
