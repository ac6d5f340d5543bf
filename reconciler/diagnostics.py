"""Diagnostics: errors and warnings as values, each pointing at a place in the spec.

Every stage (loading, validation, planning) returns a list of these instead of
raising, so the CLI can print every mistake at once, compiler-style:
``specs/prod.yaml:14:9: services[1].restart: expected one of ...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class SourcePos:
    """A place in a spec file; line and column are 1-based, as editors count."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    message: str
    field_path: str = ""
    pos: SourcePos | None = None
    severity: Severity = Severity.ERROR
    hint: str = ""
    resource: str = ""

    def __str__(self) -> str:
        parts: list[str] = []
        if self.pos is not None:
            parts.append(str(self.pos))
        if self.field_path:
            parts.append(self.field_path)
        prefix = ": ".join(parts)
        text = f"{prefix}: {self.message}" if prefix else self.message
        if self.severity is Severity.WARNING:
            text = f"warning: {text}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "severity": self.severity.value,
            "message": self.message,
            "field_path": self.field_path,
            "file": self.pos.file if self.pos else None,
            "line": self.pos.line if self.pos else None,
            "column": self.pos.column if self.pos else None,
            "hint": self.hint,
            "resource": self.resource,
        }


MAX_DIAGNOSTICS = 500
"""Most diagnostics one collection keeps: a 100,000-item list of wrong types must not
become 100,000 lines (and their memory). Past it, one last error says how many were left out."""
MAX_MESSAGE_CHARS = 1000
"""Longest message kept; a spec value quoted in one must not make it megabytes long."""


@dataclass
class Diagnostics:
    """An ordered collection of diagnostics that stages append to (at most ``MAX_DIAGNOSTICS``)."""

    items: list[Diagnostic] = field(default_factory=list)
    left_out: int = 0

    def _add(self, diagnostic: Diagnostic) -> None:
        if len(diagnostic.message) > MAX_MESSAGE_CHARS:
            diagnostic = Diagnostic(diagnostic.message[:MAX_MESSAGE_CHARS] + "...", diagnostic.field_path,
                                    diagnostic.pos, diagnostic.severity, diagnostic.hint, diagnostic.resource)
        if len(self.items) < MAX_DIAGNOSTICS:
            self.items.append(diagnostic)
            return
        self.left_out += 1
        note = Diagnostic(f"{self.left_out} more diagnostic(s) left out; "
                          f"the first {MAX_DIAGNOSTICS} are shown")
        if self.left_out == 1:
            self.items.append(note)
        else:
            self.items[-1] = note

    def error(self, message: str, *, field_path: str = "", pos: SourcePos | None = None,
              hint: str = "", resource: str = "") -> None:
        self._add(Diagnostic(message, field_path, pos, Severity.ERROR, hint, resource))

    def warning(self, message: str, *, field_path: str = "", pos: SourcePos | None = None,
                hint: str = "", resource: str = "") -> None:
        self._add(Diagnostic(message, field_path, pos, Severity.WARNING, hint, resource))

    def extend(self, other: Sequence[Diagnostic]) -> None:
        for diagnostic in other:
            self._add(diagnostic)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.WARNING]

    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        def key(d: Diagnostic) -> tuple[str, int, int]:
            if d.pos is None:
                return ("~", 0, 0)
            return (d.pos.file, d.pos.line, d.pos.column)
        return sorted(self.items, key=key)


def format_path(loc: Sequence[str | int]) -> str:
    """Render a field path the way users write it: ``services[1].restart``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out
