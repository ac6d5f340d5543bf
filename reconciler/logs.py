"""structlog set-up: human lines on a TTY, JSON for machines, secrets scrubbed."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO, cast

import structlog

from reconciler.sensitive import scrub_data


def _scrub(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    scrubbed: dict[str, Any] = scrub_data(dict(event))
    return scrubbed


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is *now*. Binding the stream at configure time
    breaks when it is replaced later (an embedding program or a test harness swaps and
    closes it): a log line must never fail a run."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (ValueError, OSError):
            return 0

    def flush(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()


def _dropper(events: frozenset[str]) -> Any:
    def drop(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        if event.get("event") in events:
            raise structlog.DropEvent
        return event
    return drop


def configure(*, fmt: str = "auto", verbose: int = 0, hidden_events: frozenset[str] = frozenset()) -> None:
    """``fmt`` is ``console``, ``json`` or ``auto`` (console on a TTY, JSON otherwise).
    ``hidden_events``: event names not logged at all, because the command's own output
    already says the same (the CLI's text output shows every change and host error).
    Console colours follow ``NO_COLOR`` / ``FORCE_COLOR`` like the rest of the output."""
    from reconciler.terminal import use_color

    level = logging.DEBUG if verbose > 0 else logging.WARNING if verbose < 0 else logging.INFO
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(
        colors=use_color("auto", sys.stderr))
    structlog.configure(
        processors=[
            _dropper(hidden_events),
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks become text first, so the scrubber sees them too.
            structlog.processors.format_exc_info,
            _scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
    # paramiko logs transport noise at INFO, and every failed handshake as an ERROR with
    # a traceback from its own thread; the SSH transport already reports those failures
    # as TransportError (and a firewall's confirm probe expects them), so keep paramiko
    # quiet unless debugging.
    logging.getLogger("paramiko").setLevel(logging.DEBUG if verbose > 1 else logging.CRITICAL)
