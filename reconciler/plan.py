"""Plans and changes as plain, frozen data that serialises to JSON.

The JSON form (``--output json`` and ``plan --out``) is documented in
docs/plan-json.md; ``FORMAT_VERSION`` changes whenever a field changes meaning.
Values pass through ``public()`` on the way out, so secrets never serialise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.diagnostics import Diagnostic
from reconciler.sensitive import KnownAfterApply, Sensitive, public

FORMAT_VERSION = 1


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "delete": "-", "replace": "-/+"}[self.value]


class Reason(StrEnum):
    ABSENT = "absent"              # not on the host yet
    SPEC_CHANGED = "spec-changed"  # the spec asks for something new
    DRIFT = "drift"                # changed on the host outside the reconciler
    REMOVED = "removed-from-spec"  # owned and no longer in the spec
    REQUESTED = "replace-requested"  # --replace on the command line
    UNWANTED = "absent-in-spec"    # the spec says it must not exist
    TRIGGERED = "triggered"        # something it declares as a trigger changes in this run


@dataclass(frozen=True)
class FieldChange:
    """One field's before and after. ``path`` is dotted (``env.DB_HOST``)."""

    path: str
    old: Any
    new: Any

    @property
    def sensitive(self) -> bool:
        return isinstance(self.old, Sensitive) or isinstance(self.new, Sensitive)

    @property
    def pending(self) -> bool:
        return isinstance(self.new, KnownAfterApply)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "old": public(self.old), "new": public(self.new),
                "sensitive": self.sensitive, "known_after_apply": self.pending}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldChange:
        return cls(data["path"], data["old"], data["new"])


@dataclass(frozen=True)
class Change:
    host: str
    kind: str
    id: str
    action: Action
    fields: tuple[FieldChange, ...] = ()
    reason: Reason = Reason.ABSENT
    note: str = ""

    @property
    def address(self) -> str:
        return f"{self.kind}:{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host, "kind": self.kind, "id": self.id, "address": self.address,
            "action": self.action.value, "reason": self.reason.value, "note": public(self.note),
            "fields": [f.to_json() for f in self.fields],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(data["host"], data["kind"], data["id"], Action(data["action"]),
                   tuple(FieldChange.from_json(f) for f in data["fields"]),
                   Reason(data["reason"]), data.get("note", ""))


@dataclass(frozen=True)
class Handover:
    """An object changing hands at apply, with no change to the object itself: a stack
    takes it over from another (``adopt:``), or the 0.1 inventory is migrated (an
    object goes to the stack that declares it; ``to_stack`` ``""``: to no stack yet)."""

    address: str
    from_stack: str  # "" for the 0.1 inventory
    to_stack: str    # "" for unclaimed (kept, owned by no stack, never pruned)

    def describe(self) -> str:
        source = f"stack {self.from_stack}" if self.from_stack else "the 0.1 inventory"
        if not self.to_stack:
            return f"{self.address}: from {source}, declared by no stack yet: kept unclaimed (never pruned)"
        how = " (adopt)" if self.from_stack else ""
        return f"{self.address}: moves from {source} to stack {self.to_stack}{how}"

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "from_stack": self.from_stack, "to_stack": self.to_stack}


@dataclass
class HostPlan:
    host: str
    changes: list[Change] = field(default_factory=list)
    # Objects the reconciler sees but does not own; shown, never touched.
    unmanaged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Ownership that changes at apply (adopt:, the 0.1 inventory's migration).
    handovers: list[Handover] = field(default_factory=list)
    observed_digest: str = ""
    error: str = ""
    # The error came from the connection (host unreachable, host lock busy): a retry may work.
    transient: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "changes": [c.to_json() for c in self.changes],
                "unmanaged": self.unmanaged, "warnings": [public(w) for w in self.warnings],
                "handovers": [h.to_json() for h in self.handovers],
                "observed_digest": self.observed_digest, "error": public(self.error)}


@dataclass
class Plan:
    spec_path: str
    spec_digest: str
    revision: str = ""
    hosts: list[HostPlan] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    stack: str = ""

    @property
    def changes(self) -> list[Change]:
        return [c for h in self.hosts for c in h.changes]

    @property
    def has_changes(self) -> bool:
        """Anything for apply to do: changes, or ownership handed over."""
        return bool(self.changes) or any(h.handovers for h in self.hosts)

    @property
    def has_errors(self) -> bool:
        return any(h.error for h in self.hosts)

    def summary(self) -> dict[str, int]:
        add = change = destroy = 0
        for c in self.changes:
            if c.action is Action.CREATE:
                add += 1
            elif c.action is Action.UPDATE:
                change += 1
            elif c.action is Action.DELETE:
                destroy += 1
            else:
                add += 1
                destroy += 1
        return {"add": add, "change": change, "destroy": destroy}

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "spec_path": self.spec_path,
            "spec_digest": self.spec_digest,
            "stack": self.stack,
            "revision": self.revision,
            "summary": self.summary(),
            "hosts": [h.to_json() for h in self.hosts],
            "diagnostics": [d.to_json() for d in self.diagnostics],
        }
