"""Delivery of the controller's notices (webhooks, chat) and commit statuses (the forge).

``Notifications.from_config`` reads the targets' URLs and secrets (at start, so a
missing file stops the controller instead of losing notices), and gives each
target an ``Outbox``: a bounded queue and a thread of its own, so a receiver that
fails or hangs delays only its own messages and never the loop. Notices that
repeat without a new commit (drift, controller trouble) pass a rate limit first.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import structlog

from reconciler.controller.config import ControllerConfig, NotifyTarget, TargetKind
from reconciler.controller.notices import CommitStatus, Notice
from reconciler.controller.notifications.chat import AppriseMissing, AppriseSender
from reconciler.controller.notifications.forge import ForgeStatuses
from reconciler.controller.notifications.outbox import Delivery, DeliveryError, Outbox, Outcome
from reconciler.controller.notifications.payload import link_for, notice_payload
from reconciler.controller.notifications.ratelimit import RateLimiter
from reconciler.controller.notifications.webhook import WebhookSender

__all__ = ["COMMIT_STATUS_TARGET", "AppriseMissing", "Delivery", "DeliveryError", "Notifications", "Outbox",
           "Outcome", "public_repo"]

log = structlog.get_logger("reconciler.controller.notifications")

COMMIT_STATUS_TARGET = "commit-status"
"""The ``target`` label of commit statuses in the notifications metric."""


def public_repo(url: str) -> str:
    """The repository URL without credentials (``https://user:token@host/x`` -> ``https://host/x``)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass
class _Target:
    config: NotifyTarget
    sender: WebhookSender | AppriseSender
    outbox: Outbox

    def wants(self, notice: Notice) -> bool:
        return self.config.events is None or notice.kind in self.config.events


class Notifications:
    """Hands notices and commit statuses to the targets' outboxes (``publish`` and
    ``commit_status`` never block). ``start`` the workers, ``close`` at the end."""

    def __init__(self, config: ControllerConfig, *, targets: list[_Target], forge: ForgeStatuses | None,
                 forge_outbox: Outbox | None, on_outcome: Callable[[str, Outcome], None]) -> None:
        self.config = config
        self.targets = targets
        self.forge = forge
        self.forge_outbox = forge_outbox
        self.on_outcome = on_outcome
        rate = config.notifications.rate_limit
        self.limiter = RateLimiter(rate.burst, rate.period)
        self.controller = {"name": socket.gethostname(), "repo": public_repo(config.repo),
                           "branch": config.branch, "path": config.path}

    @classmethod
    def from_config(cls, config: ControllerConfig, environ: Mapping[str, str],
                    on_outcome: Callable[[str, Outcome], None] = lambda _t, _o: None) -> Notifications:
        """Read every target's URL and secret now; ``ConfigError`` names what is wrong
        (never a URL or a secret)."""
        n = config.notifications

        def outbox(name: str) -> Outbox:
            return Outbox(name, size=n.queue_size, retries=n.retries, timeout=n.timeout,
                          backoff_base=n.backoff_base, backoff_max=n.backoff_max, on_outcome=on_outcome)

        targets: list[_Target] = []
        for target in n.targets:
            urls = target.urls()
            sender: WebhookSender | AppriseSender
            if target.kind is TargetKind.WEBHOOK:
                sender = WebhookSender(urls[0], target.secret())
            else:
                sender = AppriseSender(target.name, urls)
            targets.append(_Target(target, sender, outbox(target.name)))
        forge = forge_outbox = None
        if config.commit_status is not None:
            forge = ForgeStatuses(config.commit_status, config.commit_status.token(environ))
            forge_outbox = outbox(COMMIT_STATUS_TARGET)
        return cls(config, targets=targets, forge=forge, forge_outbox=forge_outbox, on_outcome=on_outcome)

    @property
    def outboxes(self) -> list[Outbox]:
        return [t.outbox for t in self.targets] + ([self.forge_outbox] if self.forge_outbox else [])

    @property
    def enabled(self) -> bool:
        return bool(self.outboxes)

    def start(self) -> None:
        for box in self.outboxes:
            box.start()

    def publish(self, notice: Notice, now: float | None = None) -> None:
        """Queue ``notice`` for every target that wants it (rate-limited when it repeats)."""
        wanted = [t for t in self.targets if t.wants(notice)]
        if not wanted:
            return
        held = 0
        if notice.kind.repeats:
            at = time.time() if now is None else now
            admitted, held = self.limiter.admit((notice.kind, notice.hosts), at)
            if not admitted:
                log.info("notice held back by the rate limit", notice=notice.kind.value,
                         hosts=list(notice.hosts))
                for target in wanted:
                    self.on_outcome(target.config.name, Outcome.HELD)
                return
        link = link_for(self.config.notifications.link, notice.revision)
        for target in wanted:
            if isinstance(target.sender, WebhookSender):
                payload = notice_payload(notice, controller=self.controller, link=link, held=held)
                target.outbox.put(target.sender.delivery(payload))
            else:
                target.outbox.put(target.sender.delivery(notice, link=link, held=held))

    def commit_status(self, status: CommitStatus) -> None:
        if self.forge is not None and self.forge_outbox is not None:
            self.forge_outbox.put(self.forge.delivery(status))

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(box.wait_idle(max(0.0, deadline - time.monotonic())) for box in self.outboxes)

    def close(self, timeout: float) -> None:
        """Give what is queued up to ``timeout`` seconds in all, then stop."""
        deadline = time.monotonic() + timeout
        left = sum(box.close(max(0.0, deadline - time.monotonic())) for box in self.outboxes)
        if left:
            log.warning("notifications not delivered at stop", count=left)
