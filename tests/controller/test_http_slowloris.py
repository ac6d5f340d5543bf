"""Slow clients (a "slowloris": connections that send a request a byte at a time and
never finish) neither block other requests nor exhaust the server. The request
deadline bounds each one, and with every slot taken a new connection evicts the
oldest one still sending. Before the fix each slow client held a thread for as
long as it liked, and nothing capped their number."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.controller.http_support import get, raw_connection, serving


def drip(sock: socket.socket, stop: threading.Event) -> None:
    try:
        sock.sendall(b"GET /status HTTP/1.1\r\n")
        while not stop.wait(0.2):
            sock.sendall(b"X-a: b\r\n")
    except OSError:
        pass  # cut off by the server: what should happen


@pytest.mark.timeout(120)
def test_slow_clients_do_not_block_other_requests() -> None:
    with serving(request_deadline=30.0, max_connections=8) as server:
        stop = threading.Event()
        slow = [raw_connection(server) for _ in range(20)]
        threads = [threading.Thread(target=drip, args=(s, stop), daemon=True) for s in slow]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)  # every slot is taken by a slow client by now
            # Each request gets through: it evicts the oldest slow sender.
            assert [get(server, timeout=20) for _ in range(10)] == [200] * 10
        finally:
            stop.set()
            for s in slow:
                s.close()
            for t in threads:
                t.join(5)


@pytest.mark.timeout(120)
def test_connections_beyond_the_cap_are_refused_when_all_are_busy_answering() -> None:
    gate = threading.Event()
    with serving(max_connections=2) as server:
        server.status = lambda: (gate.wait(30), {"ok": True})[1]  # /status answers only when told
        busy = [raw_connection(server, b"GET /status HTTP/1.0\r\n\r\n") for _ in range(2)]
        time.sleep(0.5)
        extra = raw_connection(server, b"GET /healthz HTTP/1.0\r\n\r\n")
        assert extra.recv(4096).startswith(b"HTTP/1.0 503")
        extra.close()
        gate.set()
        for sock in busy:
            assert sock.recv(4096).startswith(b"HTTP/1.0 200")
            sock.close()
        assert get(server) == 200
