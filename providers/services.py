"""PLACEHOLDER: being written. systemd services rendered into /etc/systemd/system."""

from __future__ import annotations

from reconciler.provider import Provider, Resource


class Service(Resource):
    name: str


class ServicesProvider(Provider[Service]):
    kind = "services"
    model = Service
    order = 40
    singleton = False
    description = "systemd services rendered into /etc/systemd/system."

    def resource_id(self, resource: Service) -> str:
        return resource.name
