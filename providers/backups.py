"""PLACEHOLDER: being written. Scheduled backups."""

from __future__ import annotations

from reconciler.provider import Provider, Resource


class Backup(Resource):
    name: str


class BackupsProvider(Provider[Backup]):
    kind = "backups"
    model = Backup
    order = 70
    singleton = False
    description = "Scheduled backups."

    def resource_id(self, resource: Backup) -> str:
        return resource.name
