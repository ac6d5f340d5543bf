"""Files a spec names on the machine that runs reconcile: confined to the spec's root.

In a GitOps set-up whoever can commit to the spec repository is less trusted than
root on the controller. A spec may name files to read on *this* machine (a
``template:``, the spec files themselves), and every such path must stay inside the
**spec root**, resolved with symlinks included; otherwise a commit could copy the
controller's SSH key or ``/proc/self/environ`` into a world-readable file on a host.

The spec root is the git work tree that holds the spec when there is one (the
nearest parent directory with a ``.git`` entry, as for a controller's checkout or a
clone), else the spec directory (for a single spec file, its directory). Paths the
operator gives (the spec path on the command line, the controller's own settings)
are trusted; paths written *in* the spec are not.

A refusal never shows the content of the file it refused, and names the path only
as the spec wrote it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reconciler.errors import ReconcilerError

MAX_SPEC_FILE_BYTES = 4 << 20
"""Largest spec file or template read, in bytes (4 MiB): text, not data."""


class SpecFileError(ReconcilerError):
    """A file the spec names cannot be used: outside the spec root, missing, too large,
    not UTF-8. The message names the path as the spec wrote it, never the content."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


def find_spec_root(spec_path: str | os.PathLike[str]) -> Path:
    """The directory a spec may read files from (see the module docstring), resolved.

    The work tree is looked for along the path *as given* (not resolved), so a spec
    directory that is a symbolic link committed into the repository still belongs to
    that repository, and ``is_inside(root, spec_path)`` tells whether it leads out."""
    lexical = Path(os.path.abspath(spec_path))
    start = lexical if lexical.is_dir() else lexical.parent
    for candidate in [start, *start.parents]:
        if os.path.lexists(candidate / ".git"):
            return Path(os.path.realpath(candidate))
    real = Path(os.path.realpath(spec_path))
    return real if real.is_dir() else real.parent


def is_inside(root: Path, path: Path) -> bool:
    """Is the fully resolved ``path`` the root itself or below it?"""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def resolve_inside(root: Path, base_dir: Path, name: str, *, what: str) -> Path:
    """``name`` (relative to ``base_dir``, or absolute) resolved with symlinks; raises
    ``SpecFileError`` unless it is a regular file inside ``root``."""
    if "\0" in name:
        raise SpecFileError(f"{what} {name!r}: a path cannot contain NUL")
    real = Path(os.path.realpath(base_dir / name))
    if not is_inside(root, real):
        raise SpecFileError(f"{what} {name!r} is outside the spec's repository ({root}); only files "
                            "inside it may be read (symbolic links are followed before this check)")
    try:
        info = os.stat(real)
    except FileNotFoundError:
        raise SpecFileError(f"{what} {name!r} does not exist") from None
    except OSError as exc:
        raise SpecFileError(f"{what} {name!r} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SpecFileError(f"{what} {name!r} is not a regular file")
    return real


def decode_text(raw: bytes, what: str) -> str:
    """UTF-8 text, or ``SpecFileError`` naming the line and column of the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecFileError(f"{what} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, "
                            f"column {column}", line=line, column=column) from None


def read_bytes_bounded(path: Path, what: str, limit: int = MAX_SPEC_FILE_BYTES) -> bytes:
    """The file's bytes, refusing one larger than ``limit`` before reading it. The final
    component is opened without following a link (it was resolved already)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise SpecFileError(f"{what} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SpecFileError(f"{what} is not a regular file")
        if info.st_size > limit:
            raise SpecFileError(f"{what} is {info.st_size / (1 << 20):.1f} MiB; at most "
                                f"{limit >> 20} MiB is read")
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise SpecFileError(f"{what} is larger than {limit >> 20} MiB; it is not read")
    return raw


def read_spec_text(root: Path, base_dir: Path, name: str, *, what: str,
                   limit: int = MAX_SPEC_FILE_BYTES) -> str:
    """The UTF-8 text of a file the spec names, confined to ``root`` (see the module docstring)."""
    label = f"{what} {name!r}"
    return decode_text(read_bytes_bounded(resolve_inside(root, base_dir, name, what=what), label, limit),
                       label)
