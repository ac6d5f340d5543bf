"""PLACEHOLDER: being written. Retention of backups and logs."""

from __future__ import annotations

from reconciler.provider import Provider, Resource


class RetentionRule(Resource):
    name: str


class RetentionProvider(Provider[RetentionRule]):
    kind = "retention"
    model = RetentionRule
    order = 80
    singleton = False
    description = "Retention of backups and logs."

    def resource_id(self, resource: RetentionRule) -> str:
        return resource.name
