"""PLACEHOLDER: being written. Docker containers on the host's own engine."""

from __future__ import annotations

from reconciler.provider import Provider, Resource


class Container(Resource):
    name: str


class ContainersProvider(Provider[Container]):
    kind = "containers"
    model = Container
    order = 30
    singleton = False
    description = "Docker containers on the host's own engine."

    def resource_id(self, resource: Container) -> str:
        return resource.name
