"""The host-side inventory: what each stack owns on a host, in readable JSON.

Several specs may manage one host; each is a *stack* with a name (``stack:`` in the
spec). In ``/var/lib/reconciler`` (files mode 0600):

``owners.json``
    The host-wide owner index: for every managed object (``kind:id``) the one stack
    that owns it and whether the reconciler *created* it. Being a map keyed by
    address, it cannot give one object two owners; it is only written under the
    host lock, by the stack whose run holds it. It is the authority on ownership.
``stacks/<stack>.json``
    Each stack's inventory: its objects with kind, id, whether they were created,
    the hash of the spec they were last applied from, the revision and the time.
    Where it disagrees with the index (only after a crash between the two writes)
    the index wins, and an object the index gives the stack without details counts
    as not created (so it is released, never deleted).
``inventory.json``
    The 0.1 single inventory. Until the first apply it is read as is; that apply
    moves its objects into the index (those the applying stack declares become the
    stack's, the others wait, *unclaimed*, for the stack that declares them; none is
    dropped or pruned) and renames the file ``inventory.json.0.1-migrated``.

A stack prunes only objects it owns and created; what to prune is its own inventory
minus its spec. An object another stack owns is never observed, pruned or changed;
declaring it is refused at plan time unless the spec lists it under ``adopt:``,
which moves it (with its *created* flag) at the next apply. A failed delete stays in
the inventory, so it is retried, never forgotten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.transport.base import PathError, Transport

STATE_DIR = "/var/lib/reconciler"
OWNERS_PATH = f"{STATE_DIR}/owners.json"
STACKS_DIR = f"{STATE_DIR}/stacks"
LEGACY_PATH = f"{STATE_DIR}/inventory.json"
LEGACY_MIGRATED_PATH = f"{STATE_DIR}/inventory.json.0.1-migrated"
FORMAT = 2
LEGACY = ""  # the "stack" of an object handed over from the 0.1 inventory


def stack_path(stack: str) -> str:
    return f"{STACKS_DIR}/{stack}.json"


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

    @classmethod
    def from_json(cls, raw: Any, address: str) -> OwnedObject:
        if not isinstance(raw, dict):
            raise ValueError(f"{address}: expected an object")
        kind, _, rid = address.partition(":")
        return cls(str(raw.get("kind") or kind), str(raw.get("id") or rid),
                   created=bool(raw.get("created", False)),
                   **{k: str(raw.get(k) or "") for k in ("spec_hash", "revision", "applied_at")})


@dataclass(frozen=True)
class Owner:
    """An index entry: which stack owns an object, and whether the reconciler created it."""

    stack: str
    created: bool


def _objects(data: Any, where: str) -> dict[str, OwnedObject]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    return {str(a): OwnedObject.from_json(raw, str(a)) for a, raw in data.items()}


def _json(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


@dataclass
class Inventory:
    """One stack's view of a host's inventory: what it owns (``objects``), what other
    stacks own (``others``: address -> stack) and what the 0.1 inventory left to no
    stack yet (``unclaimed``)."""

    objects: dict[str, OwnedObject] = field(default_factory=dict)
    stack: str = "default"
    others: dict[str, str] = field(default_factory=dict)
    unclaimed: dict[str, OwnedObject] = field(default_factory=dict)
    # 0.1's inventory.json is still in place: the next write migrates it.
    legacy_present: bool = False
    _owners: dict[str, Owner] = field(default_factory=dict)  # the index as read
    _loaded_owners: str = ""
    _loaded_stack: str = ""

    # ------------------------------------------------------------------ reading
    @classmethod
    def parse(cls, owners_text: str | None, stack_text: str | None, legacy_text: str | None = None, *,
              stack: str = "default") -> Inventory:
        """The inventory from the three files' texts (None: the file does not exist).
        Raises ValueError (naming the file) when one is damaged."""
        owners: dict[str, Owner] = {}
        unclaimed: dict[str, OwnedObject] = {}
        if owners_text is not None and owners_text.strip():
            try:
                data = _json(owners_text)
                owner_map = data.get("owners", {})
                if not isinstance(owner_map, dict):
                    raise ValueError("owners: expected an object")
                for address, raw in owner_map.items():
                    if not isinstance(raw, dict) or not isinstance(raw.get("stack"), str):
                        raise ValueError(f"owner of {address}: expected {{\"stack\": ..., \"created\": ...}}")
                    owners[str(address)] = Owner(raw["stack"], bool(raw.get("created", False)))
                unclaimed = _objects(data.get("unclaimed"), "unclaimed")
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{OWNERS_PATH}: {exc}") from exc
        details: dict[str, OwnedObject] = {}
        if stack_text is not None and stack_text.strip():
            try:
                details = _objects(_json(stack_text).get("objects"), "objects")
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{stack_path(stack)}: {exc}") from exc
        if legacy_text is not None and legacy_text.strip():
            try:
                legacy = _objects(_json(legacy_text).get("objects"), "objects")
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{LEGACY_PATH}: {exc}") from exc
            for address, obj in legacy.items():
                if address not in owners:
                    unclaimed.setdefault(address, obj)
        objects: dict[str, OwnedObject] = {}
        others: dict[str, str] = {}
        for address, owner in owners.items():
            unclaimed.pop(address, None)
            if owner.stack != stack:
                others[address] = owner.stack
                continue
            kind, _, rid = address.partition(":")
            obj = details.get(address) or OwnedObject(kind, rid, created=False)
            obj.created = owner.created  # the index is the authority
            objects[address] = obj
        inv = cls(objects, stack, others, unclaimed, legacy_present=legacy_text is not None, _owners=owners)
        inv._loaded_owners = inv.render_owners() if owners_text is not None else ""
        inv._loaded_stack = inv.render_stack() if stack_text is not None else ""
        return inv

    @classmethod
    def read(cls, transport: Transport, stack: str = "default") -> Inventory:
        """The host's inventory as ``stack`` sees it (empty when there is none), read in
        one remote command. A damaged file is an error, never silently an empty
        inventory: that would make the reconciler forget what it owns (and so what it
        may prune)."""
        paths = [OWNERS_PATH, stack_path(stack), LEGACY_PATH]
        try:
            texts = _read_files(transport, paths)
            return cls.parse(*texts, stack=stack)
        except (ValueError, UnicodeDecodeError) as exc:
            damaged = next((p for p in paths if str(exc).startswith(p)), OWNERS_PATH)
            detail = str(exc).removeprefix(f"{damaged}: ")
            raise ReconcilerError(
                f"{damaged} on {transport.host_name} is damaged ({detail}); repair it, or move it "
                "away to start over (the reconciler then owns nothing on this host)") from exc

    # ------------------------------------------------------------------ ownership
    def owner_of(self, address: str) -> str | None:
        """The stack owning ``address`` (``LEGACY`` for an unclaimed 0.1 object), or None."""
        if address in self.objects:
            return self.stack
        if address in self.others:
            return self.others[address]
        return LEGACY if address in self.unclaimed else None

    def take(self, address: str) -> None:
        """Make this stack the owner of ``address`` (``adopt:``, or a 0.1 object it
        declares), keeping whether the reconciler created it."""
        if address in self.unclaimed:
            self.objects[address] = self.unclaimed.pop(address)
        elif address in self.others:
            del self.others[address]
            kind, _, rid = address.partition(":")
            previous = self._owners.get(address)
            self.objects[address] = OwnedObject(kind, rid, created=bool(previous and previous.created))

    def digest(self) -> str:
        """Who owns what on the host, for a saved plan's staleness check."""
        data = {"owners": {a: asdict(o) for a, o in sorted(self._owners.items())},
                "unclaimed": sorted(self.unclaimed)}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ writing
    def owners(self) -> dict[str, Owner]:
        """The index as this stack would write it: other stacks' entries as read, this
        stack's from its objects."""
        out = {a: o for a, o in self._owners.items() if o.stack != self.stack and a in self.others}
        out.update({a: Owner(self.stack, o.created) for a, o in self.objects.items()})
        return dict(sorted(out.items()))

    def render_owners(self) -> str:
        return json.dumps({
            "format": FORMAT,
            "comment": "Which reconciler stack owns each managed object on this host; the details are "
                       "in stacks/<stack>.json. Only created: true objects are ever pruned, and only "
                       "by their owner. unclaimed: objects of the 0.1 inventory no stack declares yet.",
            "owners": {a: asdict(o) for a, o in self.owners().items()},
            "unclaimed": {a: asdict(o) for a, o in sorted(self.unclaimed.items())},
        }, indent=2) + "\n"

    def render_stack(self) -> str:
        return json.dumps({
            "format": FORMAT,
            "stack": self.stack,
            "comment": f"Objects managed by reconciler stack {self.stack} on this host. "
                       "Only created: true objects are ever pruned.",
            "objects": {a: asdict(o) for a, o in sorted(self.objects.items())},
        }, indent=2) + "\n"

    def render(self) -> str:
        """This stack's inventory file (what ``stacks/<stack>.json`` holds)."""
        return self.render_stack()

    @property
    def dirty(self) -> bool:
        return (self.legacy_present or self.render_owners() != self._loaded_owners
                or self.render_stack() != self._loaded_stack)

    def write(self, transport: Transport) -> None:
        """Write what changed; call only under the host lock. The index goes first: after
        a crash between the writes the index is right and this stack's details are
        missing, which can only make it release (not delete) an object. 0.1's file is
        renamed once its objects are in the index."""
        owners_text, stack_text = self.render_owners(), self.render_stack()
        if owners_text != self._loaded_owners or self.legacy_present:
            transport.write_file(OWNERS_PATH, owners_text.encode(), mode="0600")
            self._loaded_owners = owners_text
            self._owners = self.owners()
        if stack_text != self._loaded_stack:
            transport.write_file(stack_path(self.stack), stack_text.encode(), mode="0600")
            self._loaded_stack = stack_text
        if self.legacy_present:
            transport.run(["mv", "-f", "--", LEGACY_PATH, LEGACY_MIGRATED_PATH], timeout=60)
            self.legacy_present = False

    # ------------------------------------------------------------------ this stack's objects
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


def _read_files(transport: Transport, paths: list[str]) -> list[str | None]:
    """The files' texts (None when absent), in one request through the host agent's
    ``read_files``: each file read whole through one descriptor, never through a
    symlink (an inventory replaced by one is an error, not followed)."""
    contents = transport.read_files(paths)
    texts: list[str | None] = []
    for path in paths:
        data = contents.get(path)
        if isinstance(data, PathError):
            raise ReconcilerError(f"cannot read the inventory on {transport.host_name}: {data.message}")
        if data is None:
            texts.append(None)
            continue
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc})") from exc
    return texts
