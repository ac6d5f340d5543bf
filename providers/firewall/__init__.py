"""The host firewall: nftables or ufw, commit-confirmed.

Modules: ``model`` (the spec, normalised rules), ``nft`` and ``ufw`` (rendering
and parsing per backend), ``host`` (observe, apply with a rollback timer),
``provider`` (the provider)."""

from .provider import FirewallProvider

__all__ = ["FirewallProvider"]
