"""The plain-shell path, for hosts without python3: the agent's operations done with
ordinary commands (``stat``, ``base64``, ``sh`` scripts), one remote command per
step, as before the agent existed.

Paths still travel on stdin (NUL-separated, through ``xargs -0``), never on a command
line, so any number of them works. The writes here are NOT descriptor-safe: a
non-root user who can write a managed directory can redirect them with symlinks.
The engine logs this once per host when it falls back to this path.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.errors import CommandFailed, TransportError
from reconciler.transport.base import ATOMIC_WRITE_SCRIPT, HostLock
from reconciler.transport.ops import CommandResult

ExecPlain = Callable[[Sequence[str], bytes | None, float], CommandResult]

STAT_FORMAT = "%n\\t%F\\t%U\\t%G\\t%a\\t%s\\t%u\\t%g\\n"
_TYPES = {"regular file": "file", "regular empty file": "file", "directory": "directory",
          "symbolic link": "symlink", "fifo": "fifo", "socket": "socket"}

STAT_SH = r"""
list=$(mktemp); trap 'rm -f "$list"' EXIT
cat > "$list"
xargs -0r stat --printf "$1" -- < "$list" 2>/dev/null
echo "--reconciler-sha256--"
if [ "$2" = 1 ]; then
  xargs -0r sh -c 'for p; do [ -f "$p" ] && [ ! -L "$p" ] && printf "%s\0" "$p"; done; exit 0' sh < "$list" \
    | xargs -0r sha256sum -- 2>/dev/null
fi
exit 0
"""

READ_SH = r"""
xargs -0r sh -c '
for p; do
  if [ -L "$p" ]; then printf "E\t%s\tis a symlink, not a regular file\n" "$p"
  elif [ -f "$p" ]; then printf "F\t%s\t" "$p"; base64 -w0 -- "$p"; echo
  elif [ -e "$p" ]; then printf "E\t%s\tis not a regular file\n" "$p"
  fi
done' sh
"""

ENSURE_DIR_SH = r"""
set -eu
path=$1; owner=$2; group=$3; mode=$4
if [ -L "$path" ]; then echo "$path is a symlink; refusing to follow it" >&2; exit 3; fi
if [ -e "$path" ] && [ ! -d "$path" ]; then echo "$path exists and is not a directory" >&2; exit 3; fi
mkdir -p -- "$path"
chown -- "$owner:$group" "$path"
chmod -- "$mode" "$path"
"""

REMOVE_SH = r"""
path=$1; kind=$2
if [ -d "$path" ] && [ ! -L "$path" ]; then
  [ "$kind" = file ] && { echo "$path is a directory; not removed" >&2; exit 3; }
  rmdir -- "$path" 2>/dev/null || { [ -z "$(ls -A -- "$path")" ] && exec rmdir -- "$path"
    echo "$path: Directory not empty; not removed" \
      "(only empty directories are pruned; its contents are left alone)" >&2
    exit 3; }
elif [ -e "$path" ] || [ -L "$path" ]; then
  [ "$kind" = directory ] && { echo "$path is not a directory; not removed" >&2; exit 3; }
  exec rm -f -- "$path"
fi
"""

_PARALLEL = 4  # sshd allows 10 sessions per connection; leave room for the lock and Docker


class ShellOps:
    """Answers agent-shaped requests with plain commands (``exec_plain``)."""

    def __init__(self, exec_plain: ExecPlain, host: str) -> None:
        self._exec = exec_plain
        self.host = host

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            return {"ok": True, "result": self._do(message, timeout)}
        except CommandFailed as exc:
            return {"ok": False, "error": str(exc)}

    def _sh(self, script: str, args: Sequence[str], stdin: bytes | None, timeout: float) -> CommandResult:
        return self._exec(["sh", "-c", script, "reconciler", *args], stdin, timeout)

    @staticmethod
    def _error(result: CommandResult, what: str) -> str | None:
        if result.ok:
            return None
        return (result.err.strip() or result.out.strip() or f"{what} exited {result.exit_code}")

    def _do(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        op = message.get("op")
        if op == "exec":
            stdin = base64.b64decode(message["stdin"]) if message.get("stdin") else None
            try:
                result = self._exec(message["argv"], stdin, float(message.get("timeout") or timeout))
            except TransportError as exc:
                if "timed out" not in str(exc):
                    raise
                return {"timed_out": True, "exit_code": -9, "stdout": "", "stderr": ""}
            return {"exit_code": result.exit_code, "stdout": _b64(result.stdout),
                    "stderr": _b64(result.stderr), "timed_out": False}
        if op == "batch":
            ops = message["ops"]
            if message.get("sequential"):
                return {"results": [self.request(m, timeout) for m in ops]}
            with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(ops)) or 1) as pool:
                return {"results": list(pool.map(lambda m: self.request(m, timeout), ops))}
        if op == "stat":
            return {"paths": self._stat(message["paths"], bool(message.get("sha256")), timeout)}
        if op == "read_files":
            return {"files": self._read(message["paths"], timeout)}
        if op == "write_files":
            return {"errors": self._write(message["files"], timeout)}
        if op == "ensure_dirs":
            return {"errors": [self._error(self._sh(ENSURE_DIR_SH, [d["path"], d["owner"], d["group"],
                                                                    d["mode"]], None, timeout), "mkdir")
                               for d in message["dirs"]]}
        if op == "remove":
            kind = message.get("kind", "file")
            return {"errors": [self._error(self._sh(REMOVE_SH, [p, kind], None, timeout), "rm")
                               for p in message["paths"]]}
        raise CommandFailed([str(op)], 2, f"operation {op!r} needs the host agent (python3 on the host)")

    def _stat(self, paths: list[str], sha256: bool, timeout: float) -> dict[str, Any]:
        stdin = b"".join(p.encode() + b"\0" for p in paths)
        result = self._sh(STAT_SH, [STAT_FORMAT, "1" if sha256 else "0"], stdin, timeout)
        stat_part, _, sum_part = result.out.partition("--reconciler-sha256--\n")
        out: dict[str, Any] = dict.fromkeys(paths)
        for line in stat_part.splitlines():
            parts = line.split("\t")
            if len(parts) != 8:
                continue
            path, ftype, owner, group, mode, size, uid, gid = parts
            out[path] = {"type": _TYPES.get(ftype, ftype), "owner": owner, "group": group,
                         "mode": mode.rjust(4, "0"), "size": int(size), "uid": int(uid), "gid": int(gid)}
        for line in sum_part.splitlines():
            escaped = line.startswith("\\")
            hexdigest, _, path = line.lstrip("\\").partition("  ")
            if escaped:
                path = path.replace("\\\\", "\\")
            if isinstance(out.get(path), dict):
                out[path]["sha256"] = hexdigest
        return out

    def _read(self, paths: list[str], timeout: float) -> dict[str, Any]:
        stdin = b"".join(p.encode() + b"\0" for p in paths)
        result = self._sh(READ_SH, [], stdin, timeout)
        out: dict[str, Any] = dict.fromkeys(paths)
        for line in result.out.splitlines():
            tag, _, rest = line.partition("\t")
            path, _, value = rest.partition("\t")
            if tag == "F":
                out[path] = {"data": value}
            elif tag == "E":
                out[path] = {"error": f"{path} {value}"}
        return out

    def _write(self, files: list[dict[str, Any]], timeout: float) -> list[str | None]:
        errors: list[str | None] = []
        for f in files:
            after = f.get("after")
            if after is not None and (after >= len(errors) or errors[after] is not None):
                errors.append(f"{f['path']}: not written, because {files[after]['path']} was not")
                continue
            result = self._sh(ATOMIC_WRITE_SCRIPT, [f["path"], f["mode"], f["owner"], f["group"],
                                                    f.get("dir_mode", "0755")],
                              base64.b64decode(f.get("data") or ""), timeout)
            error = self._error(result, "write")
            errors.append(None if error is None else f"{f['path']}: {error}")
        return errors


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


__all__ = ["ExecPlain", "HostLock", "ShellOps"]
