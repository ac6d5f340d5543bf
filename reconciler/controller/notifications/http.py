"""One HTTP POST with a total deadline, for the webhook and forge targets.

``urllib``'s timeout applies to each socket operation, so a receiver that trickles
a byte every few seconds could hold a worker for ever; here a timer shuts the
socket down when the attempt's deadline passes, whatever the receiver does.
Errors name the receiver by scheme, host and port only: a webhook's path or
query often *is* its credential (chat services put the token there).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from reconciler.controller.notifications.outbox import DeliveryError

MAX_RESPONSE = 64 * 1024
"""Bytes of a response read (only its status matters)."""
RETRY_STATUSES = frozenset({408, 425, 429})


def receiver(url: str) -> str:
    """``https://hooks.example.com:443``: how a URL is named in logs and errors."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def post(url: str, body: bytes, headers: Mapping[str, str], deadline: float) -> int:
    """POST ``body`` to ``url`` within ``deadline`` seconds; the response status when it
    is 2xx. ``DeliveryError`` otherwise: ``retry`` for connection faults, timeouts,
    408/425/429 and 5xx; not for other answers (a redirect is not followed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError(f"not an http(s) URL: {receiver(url)}", retry=False)
    where = receiver(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=deadline,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=deadline)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    timer = threading.Timer(deadline, _abort, args=(conn,))
    timer.daemon = True
    timer.start()
    try:
        conn.request("POST", target, body=body, headers=dict(headers))
        response = conn.getresponse()
        response.read(MAX_RESPONSE)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        if not timer.is_alive():
            raise DeliveryError(f"{where} did not answer within {deadline:g} s", retry=True) from exc
        raise DeliveryError(f"cannot deliver to {where}: {type(exc).__name__}: {exc}", retry=True) from exc
    finally:
        timer.cancel()
        conn.close()
    if 200 <= status < 300:
        return status
    retry = status >= 500 or status in RETRY_STATUSES
    raise DeliveryError(f"{where} answered HTTP {status}", retry=retry)


def _abort(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
