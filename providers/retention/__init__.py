"""Retention of files by age, count and total size.

Modules: ``script`` (the script rendered for the host), ``provider`` (the provider)."""

from .provider import RetentionProvider

__all__ = ["RetentionProvider"]
