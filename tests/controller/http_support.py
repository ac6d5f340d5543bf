"""A real ControlServer on 127.0.0.1 for the HTTP hardening tests, and raw sockets
that misbehave the way real clients do (no tests here)."""

from __future__ import annotations

import http.client
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.controller.httpserver import ControlServer
from reconciler.controller.metrics import Metrics


@contextmanager
def serving(*, request_deadline: float = 10.0, max_connections: int = 32) -> Iterator[ControlServer]:
    server = ControlServer("127.0.0.1", 0, metrics=Metrics(), secret=b"secret", on_push=lambda _e: None,
                           healthy=lambda: (True, "ok"), status=lambda: {"ok": True},
                           request_deadline=request_deadline, max_connections=max_connections)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(server: ControlServer, path: str = "/healthz", timeout: float = 30) -> int:
    conn = http.client.HTTPConnection(*server.address, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def raw_connection(server: ControlServer, first_bytes: bytes = b"") -> socket.socket:
    sock = socket.create_connection(server.address, timeout=30)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a client that crashes or loses its network does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
