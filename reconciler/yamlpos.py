"""YAML loading that remembers where every value came from, with bounded cost.

PyYAML's composer gives nodes with marks; we build plain Python data from them
and, beside it, a map from each value's path (``("services", 1, "restart")``)
to its position, so validation errors can point at the line a user wrote.
Duplicate keys, which PyYAML silently accepts, are reported.

A spec comes from whoever can commit to its repository, so loading one is
bounded before anything is built: one pass over the parser's events (no tree
yet) refuses nesting deeper than ``MAX_DEPTH``, an alias that refers to the node
it is inside (PyYAML composes that into a cycle), and aliases that would expand
the document past ``MAX_VALUES`` values (the "billion laughs": ten aliases of ten
aliases of ... is tiny as text and astronomically large as data). Every refusal
and every value PyYAML cannot construct (``2021-02-30``, a 5,000-digit integer,
bad base64) is a diagnostic at its ``file:line:column``, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.diagnostics import Diagnostic, SourcePos

Path = tuple[str | int, ...]

MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences. Specs need about six levels; Python's own
recursion limit (and libyaml's 1,000) must never be what stops a document."""
MAX_VALUES = 250_000
"""Most values (scalars, mappings, sequences) one file may hold once aliases are expanded."""


@dataclass
class LoadedYaml:
    data: Any
    positions: dict[Path, SourcePos] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # Paths of values that could not be constructed (already reported): data holds None
    # there, and a later "expected a string, got null" about them would be noise.
    broken: set[Path] = field(default_factory=set)


def _pos(file: str, node: yaml.Node) -> SourcePos:
    return SourcePos(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _mark_pos(file: str, mark: Any) -> SourcePos:
    """``mark`` is a PyYAML or libyaml mark (line and column are 0-based), or None."""
    return SourcePos(file, mark.line + 1, mark.column + 1) if mark is not None else SourcePos(file, 1, 1)


class _Refused(Exception):
    """The document is too deep, too large or cyclic; carries where."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _check_structure(text: str, loader: type[yaml.SafeLoader]) -> None:
    """Walk the parser's events once (no nodes are built) and raise ``_Refused`` for
    nesting deeper than ``MAX_DEPTH``, an alias inside its own anchor, or aliases that
    expand the document past ``MAX_VALUES``. YAML errors propagate unchanged."""
    # One frame per open collection: [values inside it so far, its anchor].
    stack: list[list[Any]] = []
    sizes: dict[str, int] = {}   # anchor -> expanded size of the node it names
    open_anchors: set[str] = set()
    total = 0

    def add(count: int, mark: Any, what: str) -> None:
        nonlocal total
        total += count
        if total > MAX_VALUES:
            raise _Refused(f"{what} expands the document past {MAX_VALUES:,} values; "
                           "aliases (*name) may not multiply a spec's size like this", mark)
        if stack:
            stack[-1][0] += count

    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.DocumentStartEvent):
            stack.clear()
            sizes.clear()
            open_anchors.clear()
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            if event.anchor is not None:
                open_anchors.add(event.anchor)
            stack.append([1, event.anchor])
        elif isinstance(event, yaml.CollectionEndEvent):
            size, anchor = stack.pop()
            if anchor is not None:
                open_anchors.discard(anchor)
                sizes[anchor] = size
            if stack:
                stack[-1][0] += size
            total += 1
            if total > MAX_VALUES:
                raise _Refused(f"more than {MAX_VALUES:,} values in one file", event.start_mark)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = 1
            add(1, event.start_mark, "this file")
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                raise _Refused(f"alias *{event.anchor} refers to a node that contains it", event.start_mark)
            # An undefined alias is the composer's to report, with its own message.
            add(sizes.get(event.anchor or "", 0), event.start_mark, f"alias *{event.anchor}")


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path, SourcePos] = {}
        self.diagnostics: list[Diagnostic] = []
        self.broken: set[Path] = set()
        # SafeConstructor knows how to turn scalar nodes into ints, bools, etc.
        self._scalars = yaml.SafeLoader("")

    def _construct(self, node: yaml.Node) -> tuple[bool, Any]:
        """(True, value), or (False, None) with a diagnostic when PyYAML cannot construct
        it: its constructors raise ValueError, AttributeError ... on odd scalars."""
        try:
            return True, self._scalars.construct_object(node, deep=True)
        except Exception as exc:
            self._scalars.recursive_objects.clear()
            problem = exc.problem if isinstance(exc, yaml.MarkedYAMLError) and exc.problem else str(exc)
            problem = problem.split(";")[0]  # Python's int-digits error goes on about sys settings
            tag = node.tag.rsplit(":", 1)[-1] if node.tag else "value"
            self.diagnostics.append(Diagnostic(f"YAML error: cannot read this {tag}: {problem[:200]}",
                                               pos=_pos(self.file, node)))
            return False, None

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.positions.setdefault(path, _pos(self.file, node))
        if isinstance(node, yaml.MappingNode):
            try:
                self._scalars.flatten_mapping(node)
            except yaml.MarkedYAMLError as exc:
                self.diagnostics.append(Diagnostic(f"YAML error: {exc.problem}",
                                                   pos=_mark_pos(self.file, exc.problem_mark)))
                return {}
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.diagnostics.append(Diagnostic(
                        "mapping keys must be plain strings", pos=_pos(self.file, key_node)))
                    continue
                ok, key = self._construct(key_node)
                if not ok:
                    continue
                if not isinstance(key, str | int | bool | float) or key is None:
                    self.diagnostics.append(Diagnostic(
                        "mapping keys must be plain strings", pos=_pos(self.file, key_node)))
                    continue
                key_s = key if isinstance(key, str) else str(key)
                child = (*path, key_s)
                if key_s in out:
                    first = self.positions.get(child)
                    self.diagnostics.append(Diagnostic(
                        f"duplicate key {key_s!r}" + (f" (first defined at {first})" if first else ""),
                        pos=_pos(self.file, key_node)))
                    continue
                # Point at the key, not the value: that is the line a user looks for.
                self.positions[child] = _pos(self.file, key_node)
                out[key_s] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        ok, value = self._construct(node)
        if not ok:
            self.broken.add(path)
        return value


# libyaml's parser is ~30x faster than PyYAML's pure-Python one (a 1,000-file spec
# composes in 30 ms instead of a second); its nodes carry the same marks.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _compose(text: str) -> yaml.Node | None:
    """Check the structure, then compose, with libyaml when present. On any error, do
    both again with the pure-Python parser: its messages and positions are the ones
    users see (and tests pin). Its composer recurses once per level, which the
    structure check has bounded first."""
    if _FAST_LOADER is not None:
        try:
            _check_structure(text, _FAST_LOADER)
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    _check_structure(text, yaml.SafeLoader)
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _reader_pos(file: str, text: str, exc: yaml.reader.ReaderError) -> SourcePos:
    """ReaderError carries a character offset, not a mark."""
    offset = max(0, min(int(exc.position), len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return SourcePos(file, line, column)


def load_yaml(text: str, file: str) -> LoadedYaml:
    """Parse one YAML document. Every problem comes back as a diagnostic, never raised."""
    try:
        node = _compose(text)
    except _Refused as exc:
        return LoadedYaml(None, {}, [Diagnostic(f"YAML refused: {exc.message}",
                                                pos=_mark_pos(file, exc.mark))])
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "invalid YAML"
        return LoadedYaml(None, {}, [Diagnostic(f"YAML syntax error: {reason}", pos=_mark_pos(file, mark))])
    except yaml.reader.ReaderError as exc:
        what = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else "character"
        return LoadedYaml(None, {}, [Diagnostic(f"YAML error: unacceptable {what}: {exc.reason}",
                                                pos=_reader_pos(file, text, exc))])
    except yaml.YAMLError as exc:
        return LoadedYaml(None, {}, [Diagnostic(f"YAML error: {str(exc)[:300]}", pos=SourcePos(file, 1, 1))])
    if node is None:
        return LoadedYaml({}, {(): SourcePos(file, 1, 1)})
    builder = _Builder(file)
    data = builder.build(node, ())
    return LoadedYaml(data, builder.positions, builder.diagnostics, builder.broken)
