"""Small helpers shared by the built-in providers (not part of the core contract)."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType
from typing import Annotated, Any

from pydantic import BeforeValidator

from reconciler.provider import Issue

_MODE = re.compile(r"^0?[0-7]{3,4}$")


def _mode(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 0750 as the octal number 488: show both readings.
        raise ValueError(f'mode must be a quoted octal string such as "0750"; YAML read this unquoted '
                         f"mode as the number {value} (octal 0{value:o}), so quote it")
    if isinstance(value, str) and not _MODE.match(value):
        raise ValueError(f'mode must be an octal string such as "0644" or "2750", got {value!r}')
    return value


Mode = Annotated[str, BeforeValidator(_mode)]
"""File mode as the quoted octal string users write (``"0750"``)."""


def normalize_mode(mode: str) -> str:
    """``"750"`` and ``"0750"`` are the same mode; stat prints the former."""
    return mode.lstrip("0").rjust(4, "0") if mode.strip("0") else "0000"


_UNSAFE_PATH = re.compile(r"[\t\n\r\0]")


def check_path(path: str, field: str = "path") -> list[Issue]:
    if not path.startswith("/"):
        return [Issue((field,), f"must be an absolute path, got {path!r}")]
    if _UNSAFE_PATH.search(path):
        return [Issue((field,), "must not contain tabs, newlines or NUL")]
    if "/../" in path + "/" or path.rstrip("/") in ("", "/"):
        return [Issue((field,), f"refusing {path!r}: '..' segments and the root directory are not allowed")]
    canonical = canonical_path(path)
    if path != canonical:
        # One object, one spelling: /opt//a, /opt/a/ and /opt/./a would otherwise be
        # three resources fighting over the same file.
        return [Issue((field,), f"write {canonical!r}, not {path!r}: no '//', '.' segments or trailing '/'")]
    return []


def canonical_path(path: str) -> str:
    """``path`` without empty or ``.`` segments and without a trailing slash."""
    return "/" + "/".join(part for part in path.split("/") if part not in ("", "."))


_NAME = re.compile(r"^[a-z_][a-z0-9_-]*\$?$")


def check_account(value: str | None, field: str) -> list[Issue]:
    if value is None:
        return []
    if _NAME.match(value) or value.isdigit():
        return []
    return [Issue((field,), f"{value!r} is not a valid user or group name")]


def parse_stat_lines(text: str) -> dict[str, dict[str, str]]:
    """Parse ``stat --printf '%n\\t%F\\t%U\\t%G\\t%a\\t%s\\n'`` output keyed by path."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 6:
            continue
        path, ftype, owner, group, mode, size = parts
        out[path] = {"type": ftype, "owner": owner, "group": group, "mode": normalize_mode(mode),
                     "size": size}
    return out


STAT_FORMAT = "%n\\t%F\\t%U\\t%G\\t%a\\t%s\\n"

_TYPE = {"regular file": "file", "regular empty file": "file", "directory": "directory",
         "symbolic link": "symlink"}


def file_type(stat_type: str) -> str:
    return _TYPE.get(stat_type, stat_type)


def lazy_module(name: str) -> ModuleType:
    """Import ``name`` on first attribute access (the stdlib LazyLoader recipe), so a
    provider whose kind a run does not use costs nothing at start-up."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


_ADDRESS_PORT = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/\s]*@)?(?:\[[^\]]*\]|[^:/\s\[\]]*):(\d+)(?:[/?#].*)?$",
                           re.IGNORECASE | re.DOTALL)


def port_out_of_range(value: str | int) -> str | None:
    """Why the port in ``value`` is unusable, or None when it is fine or there is none.
    ``value`` is a port, ``host:port``, ``[v6]:port`` or a URL (``http://h:8080/x``)."""
    if isinstance(value, int):
        port = value
    else:
        m = _ADDRESS_PORT.match(value.strip()) if not value.startswith("unix:") else None
        if m is None:
            return None
        if len(m.group(1)) > 5:
            return f"port {m.group(1)[:12]} in {value[:80]!r} is out of range 1-65535"
        port = int(m.group(1))
    if not 1 <= port <= 65535:
        return f"port {port} in {str(value)[:80]!r} is out of range 1-65535"
    return None


def check_port(value: str | int | None, where: tuple[str | int, ...]) -> list[Issue]:
    if value is None:
        return []
    why = port_out_of_range(value)
    return [Issue(where, why)] if why else []
