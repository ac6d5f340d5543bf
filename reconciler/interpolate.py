"""``${var}``, ``${secret:NAME}``, ``${published:HOST/KIND:ID/FIELD}`` and fleet references in spec strings.

Variables come from the host's ``vars`` (plus ``host``, the host's name) and
are substituted before a provider sees a resource. A variable's value may refer to
other variables (``resolve_variables``; a cycle is a spec error), and substitution
is bounded (``SizeBudget``) so a short variable used many times cannot build
gigabytes. Secret references are left
in place until a provider asks for the real value with ``reveal``; the result
is then a ``Sensitive`` string. Published references name a public value that
another resource, usually on another host, reports once it exists (the public
half of a key a backup generated on its host); ``reveal`` resolves them through a
lookup the engine provides, and a value not there yet makes the text
``KNOWN_AFTER_APPLY``. ``$${`` escapes a literal ``${``.

Fleet references name facts of other hosts of the spec: ``${host:SELECTOR/FIELD}``
(one host) and ``${each:SELECTOR/FIELD}`` (every host a selector matches, which
repeats the list item holding it). They are parsed here and resolved by
``reconciler.fleet``; substitution of variables leaves them in place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.sensitive import KNOWN_AFTER_APPLY, REDACTOR, KnownAfterApply, Sensitive

REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


PUBLISHED = "published:"
HOST_FACT = "host:"
EACH_HOST = "each:"
FLEET_PREFIXES = (HOST_FACT, EACH_HOST)


@dataclass(frozen=True)
class Reference:
    kind: str  # "var", "secret", "published", "host" or "each"
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
        elif body.startswith(FLEET_PREFIXES):
            kind, _, rest = body.partition(":")
            refs.append(Reference(kind, rest.strip()))
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


MAX_STRING_CHARS = 16 << 20
"""Longest string substitution may produce (16 Mi characters)."""
MAX_TOTAL_CHARS = 64 << 20
"""Most characters substitution may produce in one pass over a spec or a host."""


@dataclass
class SizeBudget:
    """Bounds what ``${var}`` substitution may build: a short variable used many times
    in a long string, or a long one used in many strings, must not exhaust memory.
    Strings that would go over are left as written and their paths recorded."""

    per_string: int = MAX_STRING_CHARS
    total: int = MAX_TOTAL_CHARS
    used: int = 0
    refused: list[tuple[str | int, ...]] = field(default_factory=list)

    def allow(self, length: int, path: tuple[str | int, ...]) -> bool:
        if length > self.per_string or self.used + length > self.total:
            self.refused.append(path)
            return False
        self.used += length
        return True


def _var_body(m: re.Match[str]) -> str | None:
    """The variable a match names; None for an escape, a secret, a published or a fleet
    (``${host:...}``, ``${each:...}``) reference."""
    if m.group(1):
        return None
    body = m.group(2).strip()
    return None if body.startswith(("secret:", PUBLISHED, *FLEET_PREFIXES)) else body


def substituted_length(text: str, variables: Mapping[str, str]) -> int:
    """How long ``text`` becomes once its variables are substituted (nothing is built)."""
    length = len(text)
    for m in REFERENCE.finditer(text):
        name = _var_body(m)
        if name is not None and name in variables:
            length += len(variables[name]) - len(m.group(0))
    return length


def substitute_vars(value: Any, variables: Mapping[str, str], budget: SizeBudget | None = None,
                    _path: tuple[str | int, ...] = ()) -> Any:
    """Replace ``${var}`` everywhere in a data tree; secret and published references stay. With a
    ``budget``, a string that would grow past it is left as written (see SizeBudget)."""
    if isinstance(value, str):
        if "${" not in value:
            return value

        def repl(m: re.Match[str]) -> str:
            name = _var_body(m)
            return m.group(0) if name is None else str(variables.get(name, m.group(0)))

        if budget is not None and not budget.allow(substituted_length(value, variables), _path):
            return value
        return REFERENCE.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_vars(v, variables, budget, (*_path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_vars(v, variables, budget, (*_path, i)) for i, v in enumerate(value)]
    return value


def resolve_variables(variables: Mapping[str, str], *, limit: int = MAX_STRING_CHARS) -> tuple[
        dict[str, str], dict[str, str]]:
    """Expand references between variables: ``url: "https://${domain}/"``.

    Returns ``(resolved, problems)``; ``problems`` maps a variable to why it cannot be
    resolved: it refers to itself (directly or through others), or it would grow past
    ``limit`` characters (``a: ${b}${b}``, ``b: ${c}${c}`` ... doubles each step). A
    problem variable keeps its text as written. References to names not in
    ``variables`` stay as they are (a host variable, in a top-level one); secret
    references and ``$${`` escapes stay too."""
    resolved: dict[str, str] = {}
    problems: dict[str, str] = {}
    trail: list[str] = []

    def resolve(name: str) -> str:
        if name in resolved:
            return resolved[name]
        if name in trail:
            cycle = [*trail[trail.index(name):], name]
            for member in cycle[:-1]:
                problems.setdefault(member, "variables refer to each other in a cycle: "
                                            + " -> ".join(f"${{{n}}}" for n in cycle))
            return variables[name]
        trail.append(name)
        text = variables[name]
        length = len(text)
        pieces: list[str] = []
        last = 0
        for m in REFERENCE.finditer(text):
            ref = _var_body(m)
            if ref is None or ref not in variables:
                continue
            value = resolve(ref)
            length += len(value) - len(m.group(0))
            if length > limit:
                problems.setdefault(name, f"expands to more than {limit:,} characters")
                break
            pieces += [text[last:m.start()], value]
            last = m.end()
        trail.pop()
        if name in problems:
            resolved[name] = text
        else:
            pieces.append(text[last:])
            resolved[name] = "".join(pieces)
        return resolved[name]

    for var in variables:
        resolve(var)
    # A variable that refers to a problem one is resolved with its unresolved text; that
    # is reported once, on the variable at fault.
    return resolved, problems


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
