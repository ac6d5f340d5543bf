"""The API for subcommands contributed by plugins (entry-point group ``reconciler.commands``).

A plugin registers a callable ``register(subparsers)`` that adds its parser(s) to the
``reconcile`` command line and sets ``func`` on each to a handler
``(argparse.Namespace) -> int``. The handler returns an exit code (``EXIT_OK``,
``EXIT_ERROR``, ``EXIT_CHANGES``); a ``ReconcilerError`` it raises is printed once as
``error: ...`` with exit 1, so handlers need not catch it.

What a handler may use, and nothing more from the command-line face:

* ``add_spec_argument(parser)`` — the optional ``SPEC`` positional with its standard help;
* ``add_log_options(parser)`` — ``-v``/``-q``/``--log-format``, as every subcommand has;
* ``load_spec_or_report(path)`` — load and validate a spec, printing every mistake as
  ``file:line:col: field.path: reason``; ``None`` means it was invalid (exit 1);
* ``connect(spec, host)`` — the transport (SSH or local) for one host of the spec, as a
  context manager that closes it.

This module imports nothing from ``reconciler.cli``; the CLI builds on it. It is cheap
to import (the spec loader and transports load when first used), so building the
command line costs no start-up time.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.diagnostics import Diagnostics
    from reconciler.spec import LoadedSpec
    from reconciler.transport.base import Transport

ENV_SPEC = "RECONCILER_SPEC"  # the same as reconciler.spec.ENV_SPEC (a test keeps them equal)

__all__ = [
    "EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "SPEC_HELP", "add_log_options", "add_spec_argument",
    "connect", "load_spec_or_report", "print_diagnostics",
]

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
"""Exit codes: success and nothing left to do, error, changes pending."""

SPEC_HELP = f"spec file or directory (default: ${ENV_SPEC}, else ./specs)"


def add_spec_argument(parser: argparse.ArgumentParser, *, metavar: str = "SPEC",
                      help_text: str = SPEC_HELP) -> None:
    """The optional spec path every spec-reading command takes (``args.path``)."""
    parser.add_argument("path", nargs="?", metavar=metavar, help=help_text)


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """``--log-format``, ``-v`` and ``-q``; accepted before or after the subcommand."""
    parser.add_argument("--log-format", choices=["auto", "console", "json"], default=argparse.SUPPRESS,
                        help="log lines for humans (console) or machines (json); default: console on a TTY")
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more logging (-vv)")
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only warnings")


def print_diagnostics(diags: Diagnostics) -> None:
    """Every diagnostic on stderr, compiler-style, then a one-line count of errors."""
    for d in diags.sorted():
        print(str(d), file=sys.stderr)
    n = len(diags.errors)
    if n:
        print(f"{n} error{'s' if n != 1 else ''} in the spec; nothing was changed.", file=sys.stderr)


def load_spec_or_report(path: str | None, output: str = "text") -> LoadedSpec | None:
    """Load a spec; on errors print them (as JSON on stdout with ``output="json"``) and
    return ``None``. Warnings are printed and the spec is returned."""
    from reconciler.provider import ProviderLoadError
    from reconciler.spec import load_spec

    try:
        spec, diags = load_spec(path)
    except ProviderLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if output == "json" and diags.has_errors():
        print(json.dumps({"valid": False, "diagnostics": [d.to_json() for d in diags.sorted()]}, indent=2))
        return None
    print_diagnostics(diags)
    return spec


@contextmanager
def connect(spec: LoadedSpec, host: str) -> Iterator[Transport]:
    """The transport for ``host`` (as ``reconcile apply`` would reach it), closed on exit."""
    from reconciler.engine import make_transport

    transport = make_transport(host, spec)
    try:
        yield transport
    finally:
        transport.close()
