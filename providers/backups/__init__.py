"""Scheduled backups, offsite copies and restore drills: a self-contained script and cron.d entries.

Modules: ``model`` (the resource), ``script`` (the script rendered for the host),
``provider`` (the provider), ``status`` (last backup / offsite copy / drill as data),
``recovery`` (``reconcile backup verify|recover`` from offsite copies), ``cli``
(``reconcile backup run|list|restore|offsite|verify|status|recover|keygen``)."""

from .provider import BackupsProvider

__all__ = ["BackupsProvider"]
