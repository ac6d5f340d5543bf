"""PLACEHOLDER: `reconcile backup ...` subcommands, being written."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    return None
