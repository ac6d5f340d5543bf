"""The host-side inventory: what the reconciler owns on a host, in readable JSON.

``/var/lib/reconciler/inventory.json`` lists every object the reconciler manages
there: kind, id, whether the reconciler *created* it, the hash of the spec it
was last applied from, the revision and the time. What to prune is the old
inventory minus the spec. Only objects with ``created: true`` are ever deleted;
an object the spec adopted (it existed before) is released, not removed. A
failed delete stays in the inventory, so it is retried, never forgotten.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.transport.base import Transport

INVENTORY_DIR = "/var/lib/reconciler"
INVENTORY_PATH = f"{INVENTORY_DIR}/inventory.json"
FORMAT = 1


@dataclass
class OwnedObject:
    kind: str
    id: str
    created: bool
    spec_hash: str = ""
    revision: str = ""
    applied_at: str = ""

    @property
    def address(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass
class Inventory:
    objects: dict[str, OwnedObject] = field(default_factory=dict)
    _loaded_text: str = ""

    @classmethod
    def parse(cls, text: str) -> Inventory:
        if not text.strip():
            return cls()
        data = json.loads(text)
        objects = {}
        for address, raw in data.get("objects", {}).items():
            objects[address] = OwnedObject(**{k: raw.get(k, "") for k in
                                              ("kind", "id", "spec_hash", "revision", "applied_at")},
                                           created=bool(raw.get("created", False)))
        inv = cls(objects)
        inv._loaded_text = inv.render()
        return inv

    @classmethod
    def read(cls, transport: Transport) -> Inventory:
        """The host's inventory (empty when there is none). A damaged file is an error,
        never silently an empty inventory: that would make the reconciler forget what it
        owns (and so what it may prune)."""
        data = transport.read_file(INVENTORY_PATH)
        try:
            return cls.parse(data.decode() if data else "")
        except (ValueError, TypeError, AttributeError) as exc:
            raise ReconcilerError(
                f"{INVENTORY_PATH} on {transport.host_name} is damaged ({exc}); repair it, or move it "
                "away to start over (the reconciler then owns nothing on this host)") from exc

    def render(self) -> str:
        return json.dumps({
            "format": FORMAT,
            "comment": "Objects managed by reconciler on this host. "
                       "Only created: true objects are ever pruned.",
            "objects": {a: asdict(o) for a, o in sorted(self.objects.items())},
        }, indent=2, sort_keys=False) + "\n"

    @property
    def dirty(self) -> bool:
        return self.render() != self._loaded_text

    def write(self, transport: Transport) -> None:
        if not self.dirty:
            return
        text = self.render()
        transport.write_file(INVENTORY_PATH, text.encode(), mode="0600")
        self._loaded_text = text

    def ids_of(self, kind: str) -> list[str]:
        return [o.id for o in self.objects.values() if o.kind == kind]

    def get(self, address: str) -> OwnedObject | None:
        return self.objects.get(address)

    def record(self, kind: str, rid: str, *, created: bool | None = None, spec_hash: str | None = None,
               revision: str | None = None, touched: bool = False) -> None:
        address = f"{kind}:{rid}"
        obj = self.objects.get(address)
        if obj is None:
            obj = OwnedObject(kind, rid, created=bool(created))
            self.objects[address] = obj
        elif created:
            obj.created = True
        if spec_hash is not None:
            obj.spec_hash = spec_hash
        if revision is not None:
            obj.revision = revision
        if touched:
            obj.applied_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def forget(self, address: str) -> None:
        self.objects.pop(address, None)

    def snapshot(self) -> dict[str, Any]:
        return {a: asdict(o) for a, o in self.objects.items()}
