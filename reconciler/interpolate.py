"""``${var}``, ``${secret:NAME}`` and ``${published:HOST/KIND:ID/FIELD}`` references in spec strings.

Variables come from the host's ``vars`` (plus ``host``, the host's name) and
are substituted before a provider sees a resource. Secret references are left
in place until a provider asks for the real value with ``reveal``; the result
is then a ``Sensitive`` string. Published references name a public value that
another resource, usually on another host, reports once it exists (the public
half of a key a backup generated on its host); ``reveal`` resolves them through a
lookup the engine provides, and a value not there yet makes the text
``KNOWN_AFTER_APPLY``. ``$${`` escapes a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.sensitive import KNOWN_AFTER_APPLY, REDACTOR, KnownAfterApply, Sensitive

REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


PUBLISHED = "published:"


@dataclass(frozen=True)
class Reference:
    kind: str  # "var", "secret" or "published"
    name: str


@dataclass(frozen=True)
class PublishedRef:
    """``${published:HOST/KIND:ID/FIELD}``: FIELD of resource KIND:ID as observed on HOST."""

    host: str
    address: str
    field: str

    @property
    def kind(self) -> str:
        return self.address.partition(":")[0]

    @property
    def id(self) -> str:
        return self.address.partition(":")[2]

    def __str__(self) -> str:
        return f"${{{PUBLISHED}{self.host}/{self.address}/{self.field}}}"


PublishedLookup = Callable[[PublishedRef], str | None]
"""Returns the value a published reference names, or None when it is not there (yet)."""


def parse_published(name: str) -> PublishedRef | None:
    """``HOST/KIND:ID/FIELD`` (ids may hold '/': the host ends at the first, the field
    starts after the last) or None when it has not that shape."""
    host, sep, rest = name.partition("/")
    address, sep2, field = rest.rpartition("/")
    kind, colon, rid = address.partition(":")
    if not (sep and sep2 and colon and host and field and kind and rid):
        return None
    return PublishedRef(host, address, field)


def references(text: str) -> list[Reference]:
    refs: list[Reference] = []
    for m in REFERENCE.finditer(text):
        if m.group(1):  # escaped $${...}
            continue
        body = m.group(2).strip()
        if body.startswith("secret:"):
            refs.append(Reference("secret", body[len("secret:"):].strip()))
        elif body.startswith(PUBLISHED):
            refs.append(Reference("published", body[len(PUBLISHED):].strip()))
        else:
            refs.append(Reference("var", body))
    return refs


def walk_strings(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    out: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(value, str):
        out.append((path, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            out.extend(walk_strings(v, (*path, k)))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            out.extend(walk_strings(v, (*path, i)))
    return out


def substitute_vars(value: Any, variables: Mapping[str, str]) -> Any:
    """Replace ``${var}`` everywhere in a data tree; secret and published references stay."""
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            if m.group(1):
                return m.group(0)
            body = m.group(2).strip()
            if body.startswith(("secret:", PUBLISHED)):
                return m.group(0)
            return str(variables.get(body, m.group(0)))
        return REFERENCE.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_vars(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_vars(v, variables) for v in value]
    return value


def reveal(text: str, lookup: Callable[[str], str | None],
           published: PublishedLookup | None = None) -> str | Sensitive | KnownAfterApply:
    """Resolve secret and published references. Text with none comes back unchanged
    (and un-escaped); text with a secret becomes ``Sensitive``; a secret not yet on
    the host, or a published value not yet reported (or no ``published`` lookup),
    makes the whole value ``KNOWN_AFTER_APPLY``. Published values are public: they
    alone do not make the text ``Sensitive``."""
    pending = False
    secret_seen = False

    def repl(m: re.Match[str]) -> str:
        nonlocal pending, secret_seen
        if m.group(1):
            return "${" + m.group(2) + "}"
        body = m.group(2).strip()
        if body.startswith(PUBLISHED):
            ref = parse_published(body[len(PUBLISHED):].strip())
            found = published(ref) if published is not None and ref is not None else None
            if found is None:
                pending = True
                return ""
            return found
        if not body.startswith("secret:"):
            return m.group(0)
        secret_seen = True
        value = lookup(body[len("secret:"):].strip())
        if value is None:
            pending = True
            return ""
        REDACTOR.register(value)
        return value.reveal() if isinstance(value, Sensitive) else value

    result = REFERENCE.sub(repl, text)
    if pending:
        return KNOWN_AFTER_APPLY
    if secret_seen:
        return Sensitive(result)
    return result
