"""Unified diffs of text fields (file contents, units, sites, scripts) for plans.

Pure functions, tested with golden text, plus ``read_host_texts``: the one remote
command that reads the current texts, capped at ``READ_CAP`` bytes each.

Secrets never show, not even as a diff line:
* the desired text is shown with every ``${secret:NAME}`` as ``(sensitive)``;
* a line of the host's text is shown only when it is identical to a line of the
  desired text (then it is shown as that line, redacted) or when the text is
  *public*: the spec's text has no secret and the host's file is world-readable,
  so any local user can read it anyway. Any other host line (it may hold an old
  secret value) becomes a ``(N lines of the host's file not shown: ...)`` marker;
* everything shown is scrubbed of every secret value the run knows (``public``).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reconciler.interpolate import REFERENCE, reveal
from reconciler.plan import DiffKind, TextDiff
from reconciler.sensitive import REDACTED, KnownAfterApply, Sensitive, public
from reconciler.transport.base import Transport

READ_CAP = 256 * 1024
"""Bytes of a host file read for a diff; a longer file (or a longer desired text) is
summarised as a large file with its sizes and digests."""
MAX_LINES = 200
"""Diff lines shown per field; the rest are counted in ``TextDiff.omitted``."""
MAX_LINE_CHARS = 300
CONTEXT = 3
NO_NEWLINE = "\\ No newline at end of file"


@dataclass(frozen=True)
class HostText:
    """What was read of one host file: at most ``READ_CAP`` bytes of it."""

    data: bytes
    size: int
    world_readable: bool


@dataclass(frozen=True)
class DesiredText:
    """A desired text twice: ``raw`` as it will be written (secrets resolved) and
    ``shown`` with every secret as ``(sensitive)``. ``secret_lines`` match a line of
    the spec's text that holds a secret, whatever the secret's value, to how it is
    shown: a host line with an older value of the same secret reads as that line."""

    raw: str
    shown: str
    has_secret: bool
    secret_lines: tuple[tuple[re.Pattern[str], str], ...] = ()


def _is_secret(m: re.Match[str]) -> bool:
    return not m.group(1) and m.group(2).strip().startswith("secret:")


def _shown_reference(m: re.Match[str]) -> str:
    if m.group(1):
        return "${" + m.group(2) + "}"
    return REDACTED if _is_secret(m) else m.group(0)


def _secret_line(line: str) -> tuple[re.Pattern[str], str] | None:
    """A pattern for a template line with a secret: its other text literally, any
    value where the secret goes."""
    parts: list[str] = []
    last = 0
    found = False
    for m in REFERENCE.finditer(line):
        parts.append(re.escape(line[last:m.start()]))
        if _is_secret(m):
            parts.append(".*")
            found = True
        else:
            parts.append(re.escape(_shown_reference(m)))
        last = m.end()
    parts.append(re.escape(line[last:]))
    if not found:
        return None
    return re.compile("".join(parts), re.DOTALL), REFERENCE.sub(_shown_reference, line)


def resolve(template: str, lookup: Callable[[str], str | None]) -> DesiredText | None:
    """Resolve ``${secret:NAME}`` references (as ``interpolate.reveal`` does) into the
    raw text and a shown text. None when a secret is not known until apply."""
    raw = reveal(template, lookup)
    if isinstance(raw, KnownAfterApply):
        return None
    text = raw.reveal() if isinstance(raw, Sensitive) else raw
    secret_lines = tuple(found for line in _lines(template) if (found := _secret_line(line)) is not None)
    return DesiredText(text, REFERENCE.sub(_shown_reference, template), isinstance(raw, Sensitive),
                       secret_lines)


def human_size(size: int) -> str:
    """``512 B``, ``12 KiB``, ``3 MiB`` (binary units, one decimal below 10)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            if unit == "B":
                return f"{size} B"
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _short(digest: object) -> str:
    if isinstance(digest, Sensitive) or not isinstance(digest, str):
        return REDACTED
    return digest.removeprefix("sha256:")[:12]


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


class _Hidden(str):
    """A host line that must not be shown; unequal to every other line."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


def _cut(line: str) -> str:
    body = line.rstrip("\n")
    return body if len(body) <= MAX_LINE_CHARS else body[:MAX_LINE_CHARS - 1] + "…"


def _hunks(old: Sequence[str], new: Sequence[str], hidden_why: str) -> list[str]:
    """Unified-diff body lines; runs of hidden host lines collapse into one marker."""
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for group in matcher.get_grouped_opcodes(CONTEXT):
        a0, a1, b0, b1 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_range(a0, a1)} +{_range(b0, b1)} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(_marked(" ", new[j1:j2]))
                continue
            if tag in ("replace", "delete"):
                out.extend(_old_lines(old[i1:i2], hidden_why))
            if tag in ("replace", "insert"):
                out.extend(_marked("+", new[j1:j2]))
    return out


def _range(start: int, stop: int) -> str:
    length = stop - start
    first = start + 1 if length else start
    return f"{first}" if length == 1 else f"{first},{length}"


def _marked(prefix: str, lines: Sequence[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.append(prefix + _cut(line))
        if not line.endswith("\n"):
            out.append(NO_NEWLINE)
    return out


def _old_lines(lines: Sequence[str], hidden_why: str) -> list[str]:
    out: list[str] = []
    run = 0
    for line in [*lines, None]:
        if isinstance(line, _Hidden):
            run += 1
            continue
        if run:
            out.append(f"-({run} line{'s' if run != 1 else ''} of the host's file not shown: {hidden_why})")
            run = 0
        if line is not None:
            out.extend(_marked("-", [line]))
    return out


def _capped(kind: DiffKind, lines: list[str], summary: str = "") -> TextDiff:
    shown = [public(line) for line in lines[:MAX_LINES]]
    omitted = max(0, len(lines) - MAX_LINES)
    return TextDiff(kind, tuple(shown), summary, omitted)


def text_diff(old: HostText | None, new: DesiredText, *, old_digest: object = None,
              new_digest: object = None) -> TextDiff:
    """How the host's text (None: there is none yet) becomes ``new``.

    Large texts (over ``READ_CAP``) and binary host content are summarised; a text
    whose shown lines are equal on both sides says why it still differs."""
    new_size = len(new.raw.encode())
    if old is None:
        if new_size > READ_CAP:
            digest = f", sha256 {_short(new_digest)}" if not new.has_secret else ""
            return TextDiff(DiffKind.LARGE, summary=f"large file: {human_size(new_size)}{digest}")
        lines = _lines(new.shown)
        body = [f"@@ -0,0 +{_range(0, len(lines))} @@", *_marked("+", lines)] if lines else []
        return _capped(DiffKind.TEXT, body, "" if lines else "empty")
    if old.size > READ_CAP or new_size > READ_CAP:
        digests = (f", sha256 {_short(old_digest)} -> {_short(new_digest)}"
                   if not new.has_secret and old.world_readable else "")
        return TextDiff(DiffKind.LARGE, summary=f"large file: {human_size(old.size)} -> "
                                                f"{human_size(new_size)}{digests}")
    try:
        if b"\0" in old.data:
            raise UnicodeDecodeError("utf-8", old.data, 0, 1, "NUL byte")
        old_text = old.data.decode("utf-8")
    except UnicodeDecodeError:
        return TextDiff(DiffKind.BINARY, summary=f"binary, {human_size(old.size)} -> {human_size(new_size)}")

    raw_lines, shown_lines = _lines(new.raw), _lines(new.shown)
    # A secret value with a line break would shift the lines: then no host line is
    # matched to a desired one, and (being private) none is shown.
    shown_of = dict(zip(raw_lines, shown_lines, strict=True)) if len(raw_lines) == len(shown_lines) else {}
    private = new.has_secret or not old.world_readable
    hidden_why = "the file holds secrets" if new.has_secret else "it is not world-readable on the host"
    old_shown: list[str] = []
    secret_changed = False
    for line in _lines(old_text):
        if line in shown_of:
            old_shown.append(shown_of[line])
        elif (same := next((shown for pattern, shown in new.secret_lines if pattern.fullmatch(line)),
                           None)) is not None:
            old_shown.append(same)  # the same line with another value of its secret
            secret_changed = True
        elif private:
            old_shown.append(_Hidden(line))
        else:
            old_shown.append(line)
    body = _hunks(old_shown, shown_lines, hidden_why)
    if not body:
        why = ("only secret values differ, and they are not shown" if new.has_secret
               else "the lines that differ are not shown")
        return TextDiff(DiffKind.TEXT, summary=why)
    return _capped(DiffKind.TEXT, body, "secret values differ too (not shown)" if secret_changed else "")


# One command for every file a plan needs: per argument, a line "SIZE OCTAL_MODE" (or
# "-" when the path is not a regular file, is a symlink or cannot be read) and a line
# with up to $1 bytes of it in base64. The symlink test keeps a planted link from
# showing another file's content.
READ_SCRIPT = r"""
cap=$1; shift
for p do
  if [ -f "$p" ] && [ ! -L "$p" ] && [ -r "$p" ] && meta=$(stat -c '%s %a' -- "$p" 2>/dev/null); then
    printf '%s\n' "$meta"
    head -c "$cap" -- "$p" | base64 -w0
    echo
  else
    printf -- '-\n\n'
  fi
done
exit 0
"""


def parse_read_output(text: str, paths: Sequence[str]) -> dict[str, HostText | None]:
    lines = text.split("\n")
    out: dict[str, HostText | None] = {}
    for n, path in enumerate(paths):
        meta = lines[2 * n] if 2 * n < len(lines) else "-"
        payload = lines[2 * n + 1] if 2 * n + 1 < len(lines) else ""
        size_text, _, mode_text = meta.partition(" ")
        try:
            size, mode = int(size_text), int(mode_text, 8)
            data = base64.b64decode(payload, validate=True)
        except (ValueError, binascii.Error):
            out[path] = None
            continue
        out[path] = HostText(data, size, bool(mode & 0o004))
    return out


def read_host_texts(transport: Transport, paths: Sequence[str]) -> dict[str, HostText | None]:
    """The first ``READ_CAP`` bytes of each host file (None: not a regular file, a
    symlink, or unreadable), with one remote command."""
    if not paths:
        return {}
    result = transport.run_script(READ_SCRIPT, [str(READ_CAP), *paths], timeout=120)
    return parse_read_output(result.out, paths)
