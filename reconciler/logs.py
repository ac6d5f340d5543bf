"""structlog set-up: human lines on a TTY, JSON for machines, secrets scrubbed.

structlog is imported when the first event that passes the level is logged, not at
start-up: importing it (with the asyncio it imports) is roughly a tenth of a run that
logs nothing, such as ``validate`` or a no-op plan (bench/bench_startup.py). So:

* reconciler's modules log through ``get_logger(name)``, whose calls below the level
  (or of a hidden event) return without importing structlog;
* ``configure`` records the set-up and applies it at once when structlog is already
  imported (or ``now=True``: the CLI's plugin subcommands); otherwise the first event
  that gets through applies it, and so does ``apply_if_imported()``, which
  ``load_providers`` and the CLI call after importing code that may use structlog
  directly (a plugin's provider, the transports).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO, cast

from reconciler.sensitive import scrub_data

# The stdlib levels structlog's filtering loggers use (logging.DEBUG, ...).
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "exception": 40, "critical": 50}


@dataclass(frozen=True)
class _Settings:
    fmt: str
    level: int
    hidden_events: frozenset[str]


_settings: _Settings | None = None
_applied: _Settings | None = None
_lock = threading.Lock()


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
    import structlog

    def drop(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        if event.get("event") in events:
            raise structlog.DropEvent
        return event
    return drop


def configure(*, fmt: str = "auto", verbose: int = 0, hidden_events: frozenset[str] = frozenset(),
              now: bool = False) -> None:
    """``fmt`` is ``console``, ``json`` or ``auto`` (console on a TTY, JSON otherwise).
    ``hidden_events``: event names not logged at all, because the command's own output
    already says the same (the CLI's text output shows every change and host error).
    Console colours follow ``NO_COLOR`` / ``FORCE_COLOR`` like the rest of the output.

    Applied to structlog at once when it is already imported or ``now`` is true (for
    code that imports structlog itself later, e.g. a plugin's subcommand); else when
    the first event passes the level (see the module docstring)."""
    global _settings
    level = logging.DEBUG if verbose > 0 else logging.WARNING if verbose < 0 else logging.INFO
    with _lock:
        _settings = _Settings(fmt, level, hidden_events)
    # paramiko logs transport noise at INFO, and every failed handshake as an ERROR with
    # a traceback from its own thread; the SSH transport already reports those failures
    # as TransportError (and a firewall's confirm probe expects them), so keep paramiko
    # quiet unless debugging. Set now: paramiko logs through the standard library
    # whether or not structlog is ever imported.
    logging.getLogger("paramiko").setLevel(logging.DEBUG if verbose > 1 else logging.CRITICAL)
    if now or "structlog" in sys.modules:
        _apply()


def apply_if_imported() -> None:
    """Apply a pending ``configure`` if structlog has been imported meanwhile (by a
    plugin that logs through structlog directly), so its events get the same set-up."""
    if "structlog" in sys.modules:
        _apply()


def _apply() -> None:
    """Hand the recorded set-up to structlog (importing it), once per ``configure``."""
    global _applied
    with _lock:
        settings = _settings
        if settings is None or _applied is settings:
            return
        from reconciler.terminal import import_structlog_without_rich, use_color

        import_structlog_without_rich()
        import structlog

        use_json = settings.fmt == "json" or (settings.fmt == "auto" and not sys.stderr.isatty())
        renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(
            colors=use_color("auto", sys.stderr))
        structlog.configure(
            processors=[
                _dropper(settings.hidden_events),
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                # Tracebacks become text first, so the scrubber sees them too.
                structlog.processors.format_exc_info,
                _scrub,
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(settings.level),
            logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
            cache_logger_on_first_use=False,
        )
        _applied = settings


class Logger:
    """A named logger with structlog's calls (``log.info("event", key=value)``) that
    imports structlog only for an event that will be logged. Before ``configure`` it
    passes everything to structlog, which then behaves as it would unconfigured (a
    library use, a test that sets structlog up itself)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _emit(self, method: str, event: str, kw: dict[str, Any]) -> None:
        settings = _settings
        if settings is not None:
            if _LEVELS[method] < settings.level or event in settings.hidden_events:
                return
            if _applied is not settings:
                _apply()
        import structlog

        getattr(structlog.get_logger(self.name), method)(event, **kw)

    def debug(self, event: str, **kw: Any) -> None:
        self._emit("debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._emit("info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._emit("warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._emit("error", event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        self._emit("exception", event, kw)


def get_logger(name: str) -> Logger:
    """The logger reconciler's modules (and plugins) log through; see ``Logger``."""
    return Logger(name)
