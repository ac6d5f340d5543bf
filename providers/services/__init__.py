"""systemd services: hardened units, limits, health checks.

Modules: ``model`` (the spec), ``render`` (unit and env files), ``observe``
(``systemctl show`` parsing), ``systemd`` (host commands), ``health`` (health checks),
``provider`` (the provider)."""

from .provider import ServicesProvider

__all__ = ["ServicesProvider"]
