"""nginx sites (kind ``nginx_sites``): TLS, upstreams, rate limits.

Modules: ``model`` (the spec), ``render`` (site configs), ``host`` (observe and
install with ``nginx -t``), ``provider`` (the provider)."""

from .provider import NginxSitesProvider

__all__ = ["NginxSitesProvider"]
