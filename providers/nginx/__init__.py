"""nginx (kinds ``nginx_sites`` and ``nginx``): sites with TLS, upstreams, rate limits;
the host-wide TLS/security settings and nginx.service's sandbox.

Modules: ``model`` (the site spec), ``render`` (site configs), ``host`` (observe and
install with ``nginx -t``), ``provider`` (the sites provider), ``globals`` (the
``nginx`` kind's spec and files), ``global_provider`` (its provider)."""

from .global_provider import NginxGlobalProvider
from .provider import NginxSitesProvider

__all__ = ["NginxGlobalProvider", "NginxSitesProvider"]
