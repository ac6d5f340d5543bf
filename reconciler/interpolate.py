"""``${var}`` and ``${secret:NAME}`` references in spec strings.

Variables come from the host's ``vars`` (plus ``host``, the host's name) and
are substituted before a provider sees a resource. Secret references are left
in place until a provider asks for the real value with ``reveal``; the result
is then a ``Sensitive`` string. ``$${`` escapes a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.sensitive import KNOWN_AFTER_APPLY, REDACTOR, KnownAfterApply, Sensitive

REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Reference:
    kind: str  # "var" or "secret"
    name: str


def references(text: str) -> list[Reference]:
    refs: list[Reference] = []
    for m in REFERENCE.finditer(text):
        if m.group(1):  # escaped $${...}
            continue
        body = m.group(2).strip()
        if body.startswith("secret:"):
            refs.append(Reference("secret", body[len("secret:"):].strip()))
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
    """Replace ``${var}`` everywhere in a data tree; secret references stay."""
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            if m.group(1):
                return m.group(0)
            body = m.group(2).strip()
            if body.startswith("secret:"):
                return m.group(0)
            return str(variables.get(body, m.group(0)))
        return REFERENCE.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_vars(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_vars(v, variables) for v in value]
    return value


def reveal(text: str, lookup: Callable[[str], str | None]) -> str | Sensitive | KnownAfterApply:
    """Resolve secret references. Text with none comes back unchanged (and un-escaped);
    text with one becomes ``Sensitive``; a secret not yet on the host makes the whole
    value ``KNOWN_AFTER_APPLY``."""
    pending = False
    secret_seen = False

    def repl(m: re.Match[str]) -> str:
        nonlocal pending, secret_seen
        if m.group(1):
            return "${" + m.group(2) + "}"
        body = m.group(2).strip()
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
