"""Scheduled backups: a self-contained script and a cron.d entry.

Modules: ``script`` (the script rendered for the host), ``provider`` (the provider),
``cli`` (``reconcile backup run|list|restore``)."""

from .provider import BackupsProvider

__all__ = ["BackupsProvider"]
