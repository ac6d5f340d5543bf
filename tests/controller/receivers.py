"""Real HTTP receivers on 127.0.0.1 for the notification tests (no tests here).

``Receiver`` records every request (method, path, headers, body) and answers as
told: a status per request in turn (``answers``), or holds the request without
answering until ``release()`` (``hang``), to show that a hung receiver never
holds up the controller.

``GiteaStub`` speaks the commit-status API of Gitea and Forgejo (the part the
controller uses: create a status, list a commit's statuses), because no real
forge can run here: ``POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`` with
``Authorization: token ...`` and ``{"state", "description", "context",
"target_url"}``, answered 201 with the stored status; ``GET
/api/v1/repos/{owner}/{repo}/commits/{sha}/statuses`` lists them newest first.
Wrong token: 401; unknown state: 422 (as Gitea does).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.controller.support import wait_for


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    # Handler threads are joined when the server closes, after their connections are
    # shut down: a kept-alive connection's socket outliving the test was garbage
    # collected later, in another test, as an "unclosed socket" ResourceWarning.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection (its handler's next read sees EOF)."""
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a hung request: expected here


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers as told."""

    def __init__(self, answers: list[int] | None = None, *, hang: bool = False) -> None:
        self.requests: list[Request] = []
        self.answers = list(answers or [])
        self.default = 200
        self.hang = hang
        self.arrived = threading.Condition()
        self._released = threading.Event()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.close_connections()
        self.server.server_close()

    def release(self) -> None:
        """Let hung requests go (they are answered ``default``) and stop hanging."""
        self.hang = False
        self._released.set()

    def wait(self, count: int, timeout: float = 60, what: str = "") -> list[Request]:
        return wait_for(what or f"{count} request(s) at the receiver",
                        lambda: self.requests[:] if len(self.requests) >= count else None, timeout=timeout,
                        explain=lambda: f"got {[(r.method, r.path) for r in self.requests]}")

    def answer(self, request: Request) -> tuple[int, bytes]:
        """The response to ``request`` (subclasses speak an API)."""
        status = self.answers.pop(0) if self.answers else self.default
        return status, b'{"ok": true}\n' if status < 300 else b'{"error": "as told"}\n'

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60  # an idle kept-alive connection ends; its handler with it

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(self.command, self.path, headers, body)
                with receiver.arrived:
                    receiver.requests.append(request)
                    receiver.arrived.notify_all()
                if receiver.hang:
                    receiver._released.wait(600)
                status, payload = receiver.answer(request)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = do_PUT = _any

        return Handler


@dataclass
class _Status:
    id: int
    state: str
    description: str
    context: str
    target_url: str
    created_at: str


class GiteaStub(Receiver):
    """The commit-status part of Gitea's API (see the module docstring)."""

    STATES = ("pending", "success", "error", "failure", "warning")
    CREATE = re.compile(r"^/api/v1/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]{40})$")
    LIST = re.compile(r"^/api/v1/repos/([^/]+)/([^/]+)/commits/([0-9a-f]{40})/statuses$")

    def __init__(self, token: str, repository: str = "ops/servqr") -> None:
        super().__init__()
        self.token = token
        self.repository = repository
        self.statuses: dict[str, list[_Status]] = {}
        self._lock = threading.Lock()

    @property
    def api(self) -> str:
        return f"{self.url}/api/v1"

    def states(self, sha: str) -> list[str]:
        """The states set on ``sha``, oldest first."""
        with self._lock:
            return [s.state for s in self.statuses.get(sha, [])]

    def descriptions(self, sha: str) -> list[str]:
        with self._lock:
            return [s.description for s in self.statuses.get(sha, [])]

    def wait_states(self, sha: str, states: list[str], timeout: float = 60) -> list[str]:
        got: list[str] = wait_for(f"commit statuses {states} on {sha[:12]}",
                                  lambda: self.states(sha) if self.states(sha) == states else None,
                                  timeout=timeout, explain=lambda: f"got {self.states(sha)}")
        return got

    def answer(self, request: Request) -> tuple[int, bytes]:
        path = request.path.split("?", 1)[0]
        if request.headers.get("authorization") != f"token {self.token}":
            return 401, b'{"message": "token is required"}'
        create = self.CREATE.match(path)
        listing = self.LIST.match(path)
        match = create or listing
        if match is None or f"{match.group(1)}/{match.group(2)}" != self.repository:
            return 404, b'{"message": "not found"}'
        sha = match.group(3)
        if listing is not None and request.method == "GET":
            with self._lock:
                out = [s.__dict__ for s in reversed(self.statuses.get(sha, []))]
            return 200, json.dumps(out).encode()
        if create is None or request.method != "POST":
            return 405, b'{"message": "method not allowed"}'
        data = request.json()
        if data.get("state") not in self.STATES:
            return 422, b'{"message": "invalid state"}'
        with self._lock:
            entries = self.statuses.setdefault(sha, [])
            status = _Status(len(entries) + 1, data["state"], str(data.get("description", "")),
                             str(data.get("context", "default")), str(data.get("target_url", "")),
                             time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            entries.append(status)
        return 201, json.dumps(status.__dict__).encode()


def notices(receiver: Receiver, path: str = "/hook") -> list[dict[str, Any]]:
    """The webhook payloads received at ``path``, in order."""
    return [r.json() for r in receiver.requests if r.path == path]


def wait_notice(receiver: Receiver, event: str, match: Callable[[dict[str, Any]], bool] = lambda _n: True,
                path: str = "/hook", timeout: float = 120) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        f"a {event} notice at {path}",
        lambda: next((n for n in notices(receiver, path) if n.get("event") == event and match(n)), None),
        timeout=timeout, explain=lambda: json.dumps([(n.get("event"), n.get("summary"))
                                                     for n in notices(receiver, path)], indent=1))
    return found
