"""The fleet: host groups, selectors, host facts and the references that use them.

A **selector** names hosts of the spec in one of three ways, everywhere a spec
names hosts (a resource's ``hosts:``, a group's ``hosts:``, fleet references,
cross-host ``depends_on``):

* a host name: ``db``;
* a group name: ``backend`` (its members, below);
* a pattern with shell wildcards, matched against host names: ``backend-*``, ``web-[12]``.

In a *list* of selectors, ``!SELECTOR`` takes hosts out again: ``[backend, "!backend-3"]``;
a list of exclusions only starts from every host. A group and a host may not share a
name, so a name always means one thing.

**Groups.** A host is in a group when the group's ``hosts:`` selects it or when the
host lists the group under its own ``groups:``; a host may be in any number of
groups, and a group may contain other groups (a cycle is an error).

**Facts** of a host are what other hosts may know about it: ``name``, ``address``
(where other hosts reach it; ``hosts.NAME.address``, by default the host part of
``connect``), ``groups`` (its groups, comma separated) and ``vars/NAME`` (one of its
variables, fully resolved).

**Fleet references** read facts in any string of any kind:

* ``${host:SELECTOR/FIELD}``: a fact of the one host the selector matches (a host
  name, or a group of exactly one host): ``${host:database/address}``;
* ``${each:SELECTOR/FIELD}``: the list item holding it is repeated once per host the
  selector matches, in natural order of their names (``backend-2`` before
  ``backend-10``), each copy with that host's facts: ``servers:
  ["${each:backend/address}:${each:backend/vars/api_port}"]``. The innermost list
  around the reference repeats the item; one item may use one selector only; outside
  a list it is an error. In a template text, the *line* holding it is repeated.

Mistakes are found when the spec is loaded (``check``), with the path of the string
inside the resource, so the loader reports them at their file, line and column.
Nothing here knows a resource kind.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.interpolate import EACH_HOST, FLEET_PREFIXES, HOST_FACT, REFERENCE

PATTERN_CHARS = frozenset("*?[")
FACT_FIELDS = ("name", "address", "groups", "vars/NAME")
Path = tuple[str | int, ...]
MAX_FACT_DEPTH = 32
"""Variables may name other hosts' variables; deeper than this is refused as a likely cycle."""


class FleetError(ReconcilerError):
    """A fleet reference or selector that names nothing usable; ``path`` is where, inside
    the data being expanded (empty when unknown)."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class HostFacts:
    """What the spec says about one host that other hosts may use."""

    name: str
    address: str | None
    declared_groups: tuple[str, ...] = ()
    vars: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FleetRef:
    """``${host:SELECTOR/FIELD}`` (``each`` False) or ``${each:SELECTOR/FIELD}``."""

    each: bool
    selector: str
    field: str

    def __str__(self) -> str:
        return "${" + (EACH_HOST if self.each else HOST_FACT) + f"{self.selector}/{self.field}" + "}"


def parse_fleet_ref(kind: str, name: str) -> FleetRef | str:
    """The reference ``${KIND:NAME}`` (kind ``host`` or ``each``), or why it is malformed."""
    shown = "${" + f"{kind}:{name}" + "}"
    selector, sep, fact = name.partition("/")
    if not sep or not selector or not fact:
        return f"{shown}: expected {kind}:SELECTOR/FIELD with FIELD one of {', '.join(FACT_FIELDS)}"
    if fact not in ("name", "address", "groups") and not (fact.startswith("vars/") and fact[5:]):
        return f"{shown}: unknown fact {fact!r}; a host's facts are {', '.join(FACT_FIELDS)}"
    if selector.startswith("!"):
        return f"{shown}: a reference names hosts with one selector; '!' only works in lists of selectors"
    return FleetRef(kind == "each", selector, fact)


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting ``backend-2`` before ``backend-10``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)


def is_pattern(selector: str) -> bool:
    return any(c in PATTERN_CHARS for c in selector)


def _fleet_refs(text: str) -> list[tuple[str, str]]:
    """(kind, name) of the fleet references in ``text`` (escapes skipped)."""
    found = []
    for m in REFERENCE.finditer(text):
        if m.group(1):
            continue
        body = m.group(2).strip()
        if body.startswith(FLEET_PREFIXES):
            kind, _, rest = body.partition(":")
            found.append((kind, rest.strip()))
    return found


def has_fleet_refs(value: Any) -> bool:
    """Whether any string in a data tree holds a fleet reference (cheap test first)."""
    if isinstance(value, str):
        return "${" in value and bool(_fleet_refs(value))
    if isinstance(value, dict):
        return any(has_fleet_refs(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_fleet_refs(v) for v in value)
    return False


class Fleet:
    """The hosts of a spec with their groups and facts; resolves selectors and fleet
    references (see the module docstring)."""

    def __init__(self, hosts: Mapping[str, HostFacts],
                 groups: Mapping[str, Sequence[str]] | None = None) -> None:
        self.hosts = dict(hosts)
        self.group_selectors = {name: list(sel) for name, sel in (groups or {}).items()}
        declared = {g for h in self.hosts.values() for g in h.declared_groups}
        self.group_names = sorted({*self.group_selectors, *declared}, key=natural_key)
        self.problems: list[tuple[str, int | None, str]] = []
        """(group, index in its hosts: list or None, message): mistakes in group definitions."""
        self._ordered = sorted(self.hosts, key=natural_key)
        self.members: dict[str, tuple[str, ...]] = {}
        for name in self.group_names:
            if name in self.hosts:
                self.problems.append((name, None, f"group {name!r} has the name of a host; give one of "
                                                  "them another name"))
        for name in self.group_names:
            self._members(name, [])
        self.groups_of: dict[str, tuple[str, ...]] = {
            h: tuple(g for g in self.group_names if h in self.members.get(g, ())) for h in self.hosts}
        self._resolved_vars: dict[tuple[str, str], str] = {}

    # ------------------------------------------------------------------ selectors
    def _members(self, group: str, trail: list[str]) -> tuple[str, ...]:
        if group in self.members:
            return self.members[group]
        if group in trail:
            cycle = " -> ".join([*trail[trail.index(group):], group])
            self.problems.append((trail[-1], None, f"groups contain each other in a cycle: {cycle}"))
            return ()
        chosen = {h for h, facts in self.hosts.items() if group in facts.declared_groups}
        selectors = self.group_selectors.get(group, [])
        include: set[str] = set()
        exclude: set[str] = set()
        for i, sel in enumerate(selectors):
            negative = sel.startswith("!")
            term = sel[1:] if negative else sel
            try:
                found = self._select(term, [*trail, group])
            except FleetError as exc:
                self.problems.append((group, i, str(exc)))
                continue
            (exclude if negative else include).update(found)
        if selectors and all(s.startswith("!") for s in selectors):
            include = set(self.hosts)
        members = tuple(sorted((chosen | include) - exclude, key=natural_key))
        self.members[group] = members
        return members

    def _select(self, selector: str, trail: list[str]) -> tuple[str, ...]:
        if selector in self.hosts:
            return (selector,)
        if selector in self.group_selectors or selector in self.group_names:
            return self._members(selector, trail)
        if is_pattern(selector):
            return tuple(h for h in self._ordered if fnmatch.fnmatchcase(h, selector))
        raise FleetError(self._unknown(selector))

    def _unknown(self, selector: str) -> str:
        hosts = ", ".join(self._ordered) or "none"
        if not self.group_names:
            return f"unknown host {selector!r}; hosts are {hosts}"
        groups = ", ".join(self.group_names)
        return f"unknown host or group {selector!r}; hosts are {hosts}; groups are {groups}"

    def select(self, selector: str) -> tuple[str, ...]:
        """The hosts one selector (no ``!``) matches, in natural order. FleetError when
        it names no host or group (a pattern matching nothing is an empty tuple)."""
        return self._select(selector, [])

    def targets(self, selectors: Iterable[str]) -> frozenset[str]:
        """The hosts a list of selectors matches (``!`` takes hosts out)."""
        selectors = list(selectors)
        include: set[str] = set()
        exclude: set[str] = set()
        for sel in selectors:
            if sel.startswith("!"):
                exclude.update(self.select(sel[1:]))
            else:
                include.update(self.select(sel))
        if selectors and all(s.startswith("!") for s in selectors):
            include = set(self.hosts)
        return frozenset(include - exclude)

    def ordered(self, names: Iterable[str]) -> list[str]:
        return sorted(names, key=natural_key)

    # ------------------------------------------------------------------ facts
    def fact(self, host: str, name: str) -> str:
        """One fact of one host (see the module docstring); FleetError when it has none."""
        return self._fact(host, name, ())

    def _fact(self, host: str, name: str, trail: tuple[tuple[str, str], ...]) -> str:
        facts = self.hosts[host]
        if name == "name":
            return host
        if name == "address":
            if not facts.address:
                raise FleetError(f"host {host} has no address (it connects locally); set "
                                 f"hosts.{host}.address to where other hosts reach it")
            return facts.address
        if name == "groups":
            return ",".join(self.groups_of.get(host, ()))
        var = name.removeprefix("vars/")
        if var not in facts.vars:
            raise FleetError(f"host {host} has no variable {var!r}")
        key = (host, var)
        if key in self._resolved_vars:
            return self._resolved_vars[key]
        if key in trail or len(trail) > MAX_FACT_DEPTH:
            chain = " -> ".join(f"{h}/vars/{v}" for h, v in [*trail, key])
            raise FleetError(f"variables of hosts refer to each other in a cycle: {chain}")
        value = facts.vars[var]
        if any(kind == "each" for kind, _ in _fleet_refs(value)):
            raise FleetError(f"variable {var!r} of host {host} holds an ${{each:...}} reference, which only "
                             "means something in a list item; it cannot be read as a fact")
        resolved = self._substitute_hosts(value, (*trail, key))
        self._resolved_vars[key] = resolved
        return resolved

    def resolved_vars(self, host: str) -> dict[str, str]:
        """A host's variables with ``${host:...}`` references inside them resolved
        (``${each:...}`` ones stay: they are expanded where the variable is used)."""
        out: dict[str, str] = {}
        for var, value in self.hosts[host].vars.items():
            if "${" not in value:
                out[var] = value
            elif any(kind == "each" for kind, _ in _fleet_refs(value)):
                out[var] = self._substitute_hosts(value, ((host, var),), keep_each=True)
            else:
                out[var] = self._fact(host, f"vars/{var}", ())
        return out

    def one_host(self, ref: FleetRef) -> str:
        hosts = self.select(ref.selector)
        if len(hosts) != 1:
            which = f" ({', '.join(hosts)})" if hosts else ""
            raise FleetError(f"{ref} names {len(hosts)} hosts{which}; ${{host:...}} needs exactly one (use "
                             f"${{each:{ref.selector}/{ref.field}}} in a list for all of them)")
        return hosts[0]

    # ------------------------------------------------------------------ substitution
    def _substitute_hosts(self, text: str, trail: tuple[tuple[str, str], ...] = (), *,
                          keep_each: bool = False) -> str:
        if "${" not in text:
            return text

        def repl(m: re.Match[str]) -> str:
            if m.group(1):
                return m.group(0)
            body = m.group(2).strip()
            if not body.startswith(FLEET_PREFIXES):
                return m.group(0)
            kind, _, rest = body.partition(":")
            ref = parse_fleet_ref(kind, rest.strip())
            if isinstance(ref, str):
                raise FleetError(ref)
            if ref.each:
                if keep_each:
                    return m.group(0)
                raise FleetError(f"{ref} is not inside a list: it stands for one value per host, so it "
                                 "belongs in a list item (which is repeated for each host)")
            return self._fact(self.one_host(ref), ref.field, trail)

        return REFERENCE.sub(repl, text)

    def _bind_each(self, value: Any, host: str) -> Any:
        if isinstance(value, str):
            if "${" not in value:
                return value

            def repl(m: re.Match[str]) -> str:
                if m.group(1):
                    return m.group(0)
                body = m.group(2).strip()
                if not body.startswith(EACH_HOST):
                    return m.group(0)
                ref = parse_fleet_ref("each", body[len(EACH_HOST):].strip())
                if isinstance(ref, str):
                    raise FleetError(ref)
                return self.fact(host, ref.field)

            return REFERENCE.sub(repl, value)
        if isinstance(value, dict):
            return {k: self._bind_each(v, host) for k, v in value.items()}
        if isinstance(value, list):
            return [self._bind_each(v, host) for v in value]
        return value

    def _expand(self, value: Any, path: tuple[str | int, ...], new_path: tuple[str | int, ...],
                origin: dict[tuple[str | int, ...], tuple[str | int, ...]] | None) -> Any:
        """``path``: where ``value`` is in the data as written; ``new_path``: where it
        lands in the expanded data. ``origin`` collects, for each list item, expanded
        path -> path as written (so a problem found later points at the spec)."""
        if isinstance(value, list):
            out: list[Any] = []
            for i, item in enumerate(value):
                # The nested paths of an item repeated per host are those of its first copy;
                # the origin of each copy is recorded below, which is what a lookup finds first.
                item = self._expand(item, (*path, i), (*new_path, len(out)), origin)
                selectors = _own_each_selectors(item)
                if not selectors:
                    if origin is not None:
                        origin[(*new_path, len(out))] = (*path, i)
                    out.append(item)
                    continue
                if len(selectors) > 1:
                    raise FleetError(_two_selectors(selectors), (*path, i))
                try:
                    hosts = self.select(selectors[0])
                    for h in hosts:
                        if origin is not None:
                            origin[(*new_path, len(out))] = (*path, i)
                        out.append(self._bind_each(item, h))
                except FleetError as exc:
                    raise FleetError(str(exc), (*path, i)) from None
            return out
        if isinstance(value, dict):
            return {k: self._expand(v, (*path, k), (*new_path, k), origin) for k, v in value.items()}
        return value

    def _substitute_tree(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, str):
            try:
                return self._substitute_hosts(value)
            except FleetError as exc:
                raise FleetError(str(exc), path) from None
        if isinstance(value, dict):
            return {k: self._substitute_tree(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute_tree(v, (*path, i)) for i, v in enumerate(value)]
        return value

    def expand(self, value: Any) -> Any:
        """A data tree with its fleet references resolved: list items holding
        ``${each:...}`` repeated per host, then ``${host:...}`` substituted.
        FleetError (with the path) for a reference that names nothing usable."""
        if not has_fleet_refs(value):
            return value
        return self._substitute_tree(self._expand(value, (), (), None), ())

    def expand_traced(self, value: Any) -> tuple[Any, Callable[[Path], Path]]:
        """``expand`` and a function that maps a path in the result back to the path as
        written (an item repeated for each host maps to the one item that was written)."""
        origin: dict[tuple[str | int, ...], tuple[str | int, ...]] = {}
        expanded = self._substitute_tree(self._expand(value, (), (), origin), ())

        def written(path: tuple[str | int, ...]) -> tuple[str | int, ...]:
            for k in range(len(path), 0, -1):
                if path[:k] in origin:
                    return (*origin[path[:k]], *path[k:])
            return path

        return expanded, written

    def expand_text(self, text: str) -> str:
        """A text (a template) with its fleet references resolved: a line holding
        ``${each:...}`` is repeated per host; then ``${host:...}`` is substituted.
        FleetError naming the line for a reference that names nothing usable."""
        if "${" not in text or not _fleet_refs(text):
            return text
        lines = text.split("\n")
        out: list[str] = []
        for number, line in enumerate(lines, 1):
            selectors = list(dict.fromkeys(
                name.partition("/")[0] for kind, name in _fleet_refs(line) if kind == "each"))
            try:
                if len(selectors) > 1:
                    raise FleetError(_two_selectors(selectors))
                if selectors:
                    out.extend(self._substitute_hosts(self._bind_each(line, h))
                               for h in self.select(selectors[0]))
                else:
                    out.append(self._substitute_hosts(line))
            except FleetError as exc:
                raise FleetError(f"line {number}: {exc}") from None
        return "\n".join(out)

    # ------------------------------------------------------------------ checking
    def check(self, value: Any) -> list[tuple[tuple[str | int, ...], str]]:
        """Every mistake in the fleet references of a data tree, as (path, message),
        without raising: malformed references, selectors naming nothing, a
        ``${host:...}`` matching other than one host, facts a host lacks,
        ``${each:...}`` outside a list or two selectors in one list item."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        self._check(value, (), False, found)
        return found

    def _check(self, value: Any, path: tuple[str | int, ...], in_item: bool,
               found: list[tuple[tuple[str | int, ...], str]]) -> None:
        if isinstance(value, str):
            for kind, name in dict.fromkeys(_fleet_refs(value)):
                ref = parse_fleet_ref(kind, name)
                if isinstance(ref, str):
                    found.append((path, ref))
                    continue
                if ref.each and not in_item:
                    found.append((path, f"{ref} is not inside a list: it stands for one value per host, so "
                                        "it belongs in a list item (which is repeated for each host)"))
                    continue
                problem = self._ref_problem(ref)
                if problem:
                    found.append((path, problem))
        elif isinstance(value, dict):
            for k, v in value.items():
                self._check(v, (*path, k), in_item, found)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                selectors = _own_each_selectors(item)
                if len(selectors) > 1:
                    found.append(((*path, i), _two_selectors(selectors)))
                self._check(item, (*path, i), True, found)

    def _ref_problem(self, ref: FleetRef) -> str | None:
        try:
            hosts = self.select(ref.selector) if ref.each else (self.one_host(ref),)
            for h in hosts:
                self.fact(h, ref.field)
        except FleetError as exc:
            return f"{ref}: {exc}" if not str(exc).startswith(str(ref)) else str(exc)
        return None


def _own_each_selectors(item: Any) -> list[str]:
    """The selectors of ``${each:...}`` references in ``item`` outside lists nested in it."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if "${" in value:
                for kind, name in _fleet_refs(value):
                    if kind == "each":
                        found.append(name.partition("/")[0])
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(item)
    return list(dict.fromkeys(found))


def _two_selectors(selectors: Sequence[str]) -> str:
    return (f"one list item repeats for one selector, and this one uses {len(selectors)} "
            f"({', '.join(selectors)}); split it into one item per selector")
