"""Helpers shared by the built-in kinds (not part of the core's provider contract):
``checks`` (field types and offline checks), ``cronjob`` (a script run by cron.d,
used by backups and retention)."""
