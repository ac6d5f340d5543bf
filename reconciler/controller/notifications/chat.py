"""Chat and e-mail through Apprise (https://github.com/caronc/apprise), the optional
``notify`` extra: one URL scheme per service (``slack://``, ``mailto://``,
``matrix://``, ``ntfy://``, ``json://`` ...), each URL carrying its credentials.

Apprise is imported only when a target needs it; without it the controller
refuses to start (``AppriseMissing``) rather than dropping notices silently.
Apprise logs through the standard ``logging`` module; what it logs during a
failed attempt is captured, scrubbed of the URLs' secrets and made the error.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

from reconciler.controller.config import ConfigError
from reconciler.controller.notices import Notice, Severity
from reconciler.controller.notifications.outbox import Delivery, DeliveryError
from reconciler.controller.notifications.payload import notice_text
from reconciler.sensitive import REDACTOR

INSTALL_HINT = "pip install 'reconciler[notify]'"


class AppriseMissing(ConfigError):
    pass


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Apprise's plugins (loaded at the first URL) import the stdlib's imghdr, deprecated
    since Python 3.11: that DeprecationWarning is Apprise's to fix, not the user's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def load_apprise(target: str) -> Any:
    try:
        with _quiet():
            import apprise
    except ImportError as exc:
        raise AppriseMissing(f"notification target {target} is an Apprise target, but Apprise is not "
                             f"installed: {INSTALL_HINT}") from exc
    return apprise


class AppriseSender:
    def __init__(self, target: str, urls: list[str]) -> None:
        self.target = target
        self._apprise = load_apprise(target)
        self._client = self._apprise.Apprise()
        for number, url in enumerate(urls, 1):
            with _quiet():
                added = self._client.add(url)
            if not added:
                # Never the URL itself: it carries the service's credentials.
                raise ConfigError(f"notification target {target}: Apprise does not understand URL {number} "
                                  f"(scheme {url.split('://', 1)[0]!r})")
        if not urls:
            raise ConfigError(f"notification target {target}: no Apprise URL")

    def delivery(self, notice: Notice, *, link: str | None, held: int) -> Delivery:
        title, body = notice_text(notice, link=link, held=held)
        kind = self._notify_type(notice.severity)

        def send(deadline: float) -> None:
            apprise = self._apprise
            with apprise.LogCapture(level=logging.WARNING) as captured:
                ok = bool(self._client.notify(body=body, title=title, notify_type=kind))
            if not ok:
                said = " ".join(line.split(" - ", 2)[-1] for line in captured.getvalue().splitlines())
                raise DeliveryError(REDACTOR.scrub(said or "Apprise reported a failure"), retry=True)

        return Delivery(f"{notice.kind.value} {notice.revision[:12]}", send)

    def _notify_type(self, severity: Severity) -> Any:
        types = self._apprise.NotifyType
        return {Severity.SUCCESS: types.SUCCESS, Severity.INFO: types.INFO, Severity.WARNING: types.WARNING,
                Severity.ERROR: types.FAILURE}[severity]
