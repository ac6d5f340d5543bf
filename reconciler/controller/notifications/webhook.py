"""The generic JSON webhook: a POST of the notice, signed like GitHub's webhooks.

Headers: ``Content-Type: application/json``, ``X-Reconciler-Event`` (the notice's
event), ``X-Reconciler-Delivery`` (an id, the same on every retry: receivers can
drop duplicates) and, with a ``secret_file``, ``X-Reconciler-Signature-256``:
``sha256=`` + hex HMAC-SHA256 of the raw body under the secret (check it with a
constant-time comparison before trusting the body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from reconciler import __version__
from reconciler.controller.notifications import http
from reconciler.controller.notifications.outbox import Delivery

SIGNATURE_HEADER = "X-Reconciler-Signature-256"
EVENT_HEADER = "X-Reconciler-Event"
DELIVERY_HEADER = "X-Reconciler-Delivery"


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Reconciler-Signature-256`` value of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSender:
    def __init__(self, url: str, secret: bytes | None) -> None:
        self.url = url
        self.secret = secret

    def delivery(self, payload: dict[str, Any]) -> Delivery:
        body = json.dumps(payload, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"reconciler/{__version__}",
                   EVENT_HEADER: str(payload.get("event", "")), DELIVERY_HEADER: str(payload.get("id", ""))}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)

        def send(deadline: float) -> None:
            http.post(self.url, body, headers, deadline)

        return Delivery(f"{payload.get('event')} {str(payload.get('revision', ''))[:12]}", send)
