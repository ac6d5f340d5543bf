"""PLACEHOLDER: being written. The host firewall (nftables or ufw)."""

from __future__ import annotations

from reconciler.provider import Provider, Resource


class Firewall(Resource):
    name: str


class FirewallProvider(Provider[Firewall]):
    kind = "firewall"
    model = Firewall
    order = 60
    singleton = True
    description = "The host firewall (nftables or ufw)."

    def resource_id(self, resource: Firewall) -> str:
        return resource.name
