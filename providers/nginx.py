"""PLACEHOLDER: being written. nginx sites."""

from __future__ import annotations

from reconciler.provider import Provider, Resource


class NginxSite(Resource):
    name: str


class NginxSitesProvider(Provider[NginxSite]):
    kind = "nginx_sites"
    model = NginxSite
    order = 50
    singleton = False
    description = "nginx sites."

    def resource_id(self, resource: NginxSite) -> str:
        return resource.name
