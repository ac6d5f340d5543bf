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
from reconciler.rollout import RolloutPlan
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
    ADOPT = "not-yet-managed"      # exists on the host, never applied by this stack, differs


class DiffKind(StrEnum):
    """What a text field's ``TextDiff`` holds."""

    TEXT = "text"            # ``lines`` is a unified diff (a create: every line added)
    BINARY = "binary"        # the host's content is not text; ``summary`` gives the sizes
    LARGE = "large"          # over the read cap; ``summary`` gives sizes and digests
    UNREADABLE = "unreadable"  # the host's content could not be read (``summary`` says why)


@dataclass(frozen=True)
class TextDiff:
    """How a text-valued field (a file's content, a unit, a site) changes, for review.

    ``lines`` are unified-diff body lines: ``@@ -a,b +c,d @@`` hunk headers, then
    lines starting with ``" "`` (context), ``"-"`` (only on the host) or ``"+"`` (only
    in the spec), and ``"\\ No newline at end of file"`` markers. Secrets are already
    redacted: a secret value shows as ``(sensitive)`` and a host line that could hold
    one as a ``(N lines not shown ...)`` marker. ``omitted`` counts diff lines left out
    by the size cap; ``summary`` says what the lines cannot (binary, large, identical
    apart from secrets)."""

    kind: DiffKind
    lines: tuple[str, ...] = ()
    summary: str = ""
    omitted: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "lines": [public(line) for line in self.lines],
                "summary": public(self.summary), "omitted": self.omitted}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextDiff:
        return cls(DiffKind(data["kind"]), tuple(data["lines"]), data["summary"], data["omitted"])


@dataclass(frozen=True)
class FieldChange:
    """One field's before and after. ``path`` is dotted (``env.DB_HOST``).

    ``diff`` is set for the fields a provider declares as text (``Provider.text_fields``):
    ``old``/``new`` are then digests and ``diff`` shows the lines. ``internal`` is set
    for the provider's bookkeeping fields (``Provider.internal_fields``, e.g. a pending
    daemon-reload): the user never wrote them, so plans explain them in these words
    instead of showing them as settings."""

    path: str
    old: Any
    new: Any
    diff: TextDiff | None = None
    internal: str = ""

    @property
    def sensitive(self) -> bool:
        return isinstance(self.old, Sensitive) or isinstance(self.new, Sensitive)

    @property
    def pending(self) -> bool:
        return isinstance(self.new, KnownAfterApply)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "old": public(self.old), "new": public(self.new),
                "sensitive": self.sensitive, "known_after_apply": self.pending,
                "diff": None if self.diff is None else self.diff.to_json(),
                "internal": bool(self.internal), "explanation": public(self.internal)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FieldChange:
        diff = data.get("diff")
        return cls(data["path"], data["old"], data["new"],
                   None if diff is None else TextDiff.from_json(diff), data.get("explanation", ""))


@dataclass(frozen=True)
class Change:
    host: str
    kind: str
    id: str
    action: Action
    fields: tuple[FieldChange, ...] = ()
    reason: Reason = Reason.ABSENT
    note: str = ""
    refused: str = ""
    """Why apply will refuse this change whatever happens (``Provider.refusal``), e.g. a
    directory on the host where the spec wants a file. Apply fails it without trying."""

    @property
    def address(self) -> str:
        return f"{self.kind}:{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host, "kind": self.kind, "id": self.id, "address": self.address,
            "action": self.action.value, "reason": self.reason.value, "note": public(self.note),
            "refused": public(self.refused), "fields": [f.to_json() for f in self.fields],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(data["host"], data["kind"], data["id"], Action(data["action"]),
                   tuple(FieldChange.from_json(f) for f in data["fields"]),
                   Reason(data["reason"]), data.get("note", ""), data.get("refused", ""))


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
    # Hosts this one is applied after -> the addresses there its resources wait for
    # (cross-host depends_on; empty for a host whose published values it reads).
    after: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "changes": [c.to_json() for c in self.changes],
                "unmanaged": self.unmanaged, "warnings": [public(w) for w in self.warnings],
                "handovers": [h.to_json() for h in self.handovers],
                "observed_digest": self.observed_digest, "error": public(self.error),
                "after": self.after}


@dataclass
class Plan:
    spec_path: str
    spec_digest: str
    revision: str = ""
    hosts: list[HostPlan] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    stack: str = ""
    # The order hosts are applied in (stages, batches; see reconciler.rollout), when it
    # matters: several stages, or a rollout asked for. None: all hosts at once.
    rollout: RolloutPlan | None = None

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

    @property
    def refused(self) -> list[Change]:
        """Changes apply would refuse (``Change.refused``): the plan cannot fully succeed."""
        return [c for c in self.changes if c.refused]

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
            "rollout": self.rollout.to_json() if self.rollout is not None else None,
        }
