"""The host agent: one small Python program per host, started once per connection.

Stdlib only and Python >= 3.9, because this file's source is what runs on the host:
the transport starts ``python3 -I -S -c BOOTSTRAP`` over its connection (SSH exec
channel, or a local subprocess), BOOTSTRAP prints ``BOOT_MARKER``, reads one line
with the source's length and then the source itself from stdin, and execs it. From
then on stdin/stdout carry frames; stderr is for the agent's own diagnostics.

Frames (both directions): a 5-byte header ``>IB`` (payload length, kind), then the
payload. Kind ``J``: one JSON object (UTF-8); bytes inside it travel as base64
strings. Kind ``D``: stream data, ``>I`` stream id then raw bytes; an empty body
means end of stream.

Requests are ``{"id": N, "op": NAME, ...}``; every request gets exactly one reply
``{"id": N, "ok": true, "result": ...}`` or ``{"id": N, "ok": false, "error": TEXT}``.
Requests run concurrently (a thread each), so replies may come out of order. The
first frame the agent sends is the hello, ``{"id": 0, "ok": true, "result":
{"version", "pid", "uid", "python"}}``.

Operations (see ``handle_*`` below for their fields):

* ``exec``: argv, optional stdin, timeout. The command runs in its own process group
  (a new session); on expiry the whole group is killed and the reply says
  ``timed_out``. ``cancel`` kills the groups of a request the controller gave up on.
* ``batch``: several requests in one, run in parallel (or in order with
  ``sequential``), one reply with a result per request.
* ``stat``, ``read_files``, ``write_files``, ``ensure_dirs``, ``remove``: lists of
  paths travel inside the message, never on a command line.
* ``lock`` / ``unlock``: a host-wide ``flock`` held by this process until released
  or until the agent exits.
* ``connect`` opens a unix socket (the Docker engine's) and relays it as a stream.

Every write, chown, chmod, mkdir and delete goes through descriptors: parents are
walked from ``/`` with ``O_PATH|O_DIRECTORY|O_NOFOLLOW`` one name at a time; a
symlink among the parents is followed only when a non-root user could not have
planted it (owned by root, in a directory only root can write, such as
``/var/run -> /run``), anything else is refused with the path in the message.
Files are written to ``O_CREAT|O_EXCL|O_NOFOLLOW`` temporary files in the parent's
descriptor, owner and mode set on the descriptor, fsynced, renamed over the target
with ``dir_fd`` (a crash leaves the old or the new file), then every touched
directory is fsynced once per request. The temporary files of writes cut short (the
agent killed mid-write) are removed the next time a request writes in their directory.

When stdin reaches EOF (the connection dropped, or the controller closed it), or on
SIGTERM/SIGHUP, the agent kills the process groups it started, removes the temporary
files of writes still under way, lets go of its locks and exits.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import grp
import hashlib
import json
import os
import pwd
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

PROTOCOL_VERSION = 1
HEADER = struct.Struct(">IB")
STREAM_ID = struct.Struct(">I")
KIND_JSON = ord("J")
KIND_DATA = ord("D")
MAX_FRAME = 1 << 30
BOOT_MARKER = b"RECONCILER-AGENT-BOOT"
EXIT_OLD_PYTHON = 93
MIN_PYTHON = (3, 9)

# Kept on one line: it is a command-line argument of ``python3 -c``. It reads the
# length line and the source from the same buffered stdin the agent goes on using.
BOOTSTRAP = (
    f"import sys;sys.version_info>={MIN_PYTHON!r} or sys.exit({EXIT_OLD_PYTHON});o=sys.stdout.buffer;"
    f"o.write(b'{BOOT_MARKER.decode()}\\n');o.flush();"
    "i=sys.stdin.buffer;n=int(i.readline());"
    "exec(compile(i.read(n),'reconciler-agent','exec'),{'__name__':'__main__'})"
)

O_PATH = getattr(os, "O_PATH", 0o10000000)
MAX_SYMLINKS = 40
DEFAULT_DIR_MODE = 0o755


class Refused(Exception):
    """An operation the agent will not do, with the reason in the operator's terms."""


class ParentNotDirectory(Refused):
    """A parent is something other than a directory: the path cannot exist (absent to
    ``stat`` and ``read_files``; an error to a write)."""


def encode_json(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(body), KIND_JSON) + body


def encode_data(stream_id: int, data: bytes) -> bytes:
    return HEADER.pack(len(data) + STREAM_ID.size, KIND_DATA) + STREAM_ID.pack(stream_id) + data


def read_frame(read_exact: Callable[[int], bytes]) -> tuple[int, bytes] | None:
    """(kind, payload) of the next frame, or None at a clean EOF before a header."""
    header = read_exact(HEADER.size)
    if not header:
        return None
    if len(header) != HEADER.size:
        raise EOFError("connection closed inside a frame header")
    length, kind = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes is over the limit")
    payload = read_exact(length) if length else b""
    if len(payload) != length:
        raise EOFError("connection closed inside a frame")
    return kind, payload


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


# --------------------------------------------------------------------------- accounts

def resolve_user(name: str | int) -> int:
    if isinstance(name, int) or str(name).isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise Refused(f"unknown user {name!r}") from None


def resolve_group(name: str | int) -> int:
    if isinstance(name, int) or str(name).isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise Refused(f"unknown group {name!r}") from None


# Names found are cached for the agent's life (one run); ids without a name are not, as a
# run may create the account (users) and then stat files owned by it.
_names: dict[tuple[str, int], str] = {}


def user_name(uid: int) -> str:
    key = ("u", uid)
    if key not in _names:
        try:
            _names[key] = pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)
    return _names[key]


def group_name(gid: int) -> str:
    key = ("g", gid)
    if key not in _names:
        try:
            _names[key] = grp.getgrgid(gid).gr_name
        except KeyError:
            return str(gid)
    return _names[key]


def parse_mode(mode: str | int) -> int:
    value = mode if isinstance(mode, int) else int(str(mode), 8)
    if not 0 <= value <= 0o7777:
        raise Refused(f"mode {mode!r} is out of range")
    return value


# --------------------------------------------------------------------------- safe path walk

def split_path(path: str) -> list[str]:
    if not isinstance(path, str) or not path.startswith("/"):
        raise Refused(f"{path!r} is not an absolute path")
    if "\0" in path:
        raise Refused(f"{path!r} contains NUL")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused(f"{path}: '..' segments are not allowed")
    if not parts:
        raise Refused("refusing the root directory")
    return parts


def trusted_symlink(dir_fd: int, link: os.stat_result) -> bool:
    """A symlink that no non-root user could have planted or swapped: owned by root, in
    a directory owned by root that neither others nor a non-root group may write."""
    if link.st_uid != 0:
        return False
    parent = os.fstat(dir_fd)
    if parent.st_uid != 0 or parent.st_mode & stat.S_IWOTH:
        return False
    return not (parent.st_mode & stat.S_IWGRP) or parent.st_gid == 0


def _open_dir(name: str, dir_fd: int) -> int:
    return os.open(name, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


class ParentCache:
    """Directory descriptors (O_PATH) reached safely, by logical path, for one request.

    ``parent(path, create=True)`` creates missing parents as root-owned directories
    (mode ``dir_mode``); every directory created is remembered so that its parent is
    fsynced with the rest (``touched``)."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self.touched: dict[tuple[int, int], int] = {}  # (dev, ino) -> an O_PATH fd of the directory
        self._lock = threading.Lock()
        self._swept: dict[tuple[int, int], threading.Lock] = {}  # directories swept of leftovers

    def close(self) -> None:
        for fd in list(self._fds.values()) + list(self.touched.values()):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self.touched.clear()

    def sweep_leftovers(self, dir_fd: int) -> None:
        """Remove the temporary files an interrupted write left in this directory (the
        agent SIGKILLed mid-write: systemd's KillMode=mixed does that to a controller's
        agent; a power cut), once per directory per request, before this request
        creates its own there. Only names of the agent's pattern, regular files with one
        link, owned by this user, and not a write under way in this agent: writes run
        under the host lock, so no other agent writes at the same time."""
        st = os.fstat(dir_fd)
        key = (st.st_dev, st.st_ino)
        with self._lock:
            gate = self._swept.get(key)
            if gate is None:
                gate = self._swept[key] = threading.Lock()
                gate.acquire()  # held until this sweep is done; later callers wait on it
                mine = True
            else:
                mine = False
        if not mine:
            with gate:  # wait for the first caller's sweep
                return
        try:
            _sweep(dir_fd)
        except OSError:
            pass  # a directory we cannot list: the write itself will say what is wrong
        finally:
            gate.release()

    def touch(self, dir_fd: int) -> None:
        st = os.fstat(dir_fd)
        key = (st.st_dev, st.st_ino)
        with self._lock:
            if key not in self.touched:
                self.touched[key] = os.dup(dir_fd)

    def sync_touched(self) -> None:
        for fd in list(self.touched.values()):
            try:
                rfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                continue
            try:
                os.fsync(rfd)
            except OSError:
                pass
            finally:
                os.close(rfd)

    def parent(self, path: str, create: bool = False, dir_mode: int = DEFAULT_DIR_MODE) -> tuple[int, str]:
        """(O_PATH fd of the parent directory, final name). The fd belongs to the cache."""
        parts = split_path(path)
        key = "/" + "/".join(parts[:-1])
        with self._lock:
            fd = self._fds.get(key)
        if fd is None:
            fd = self._walk(parts[:-1], create, dir_mode)
            with self._lock:
                if key in self._fds:
                    os.close(fd)
                    fd = self._fds[key]
                else:
                    self._fds[key] = fd
        return fd, parts[-1]

    def directory(self, path: str, create: bool = False, dir_mode: int = DEFAULT_DIR_MODE) -> int:
        """A new O_PATH fd of ``path`` itself, walked the same way (caller closes it)."""
        return self._walk(split_path(path), create, dir_mode)

    def _walk(self, parts: list[str], create: bool, dir_mode: int) -> int:
        fd = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        ancestors: list[int] = []
        shown = ""
        pending = list(parts)
        followed = 0
        try:
            while pending:
                name = pending.pop(0)
                if name in ("", "."):
                    continue
                if name == "..":  # only from a trusted symlink's target
                    if ancestors:
                        os.close(fd)
                        fd = ancestors.pop()
                        shown = shown.rsplit("/", 1)[0]
                    continue
                here = shown + "/" + name
                try:
                    nfd = _open_dir(name, fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(name, dir_mode, dir_fd=fd)
                        self.touch(fd)
                    except FileExistsError:
                        pass
                    pending.insert(0, name)  # open it again, with the same checks
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise ParentNotDirectory(f"parent {here} is not a directory") from None
                    if not trusted_symlink(fd, st):
                        who = (f"owned by uid {st.st_uid}" if st.st_uid != 0
                               else "in a directory that non-root users can write")
                        raise Refused(f"parent {here} is a symlink {who}; refusing") from None
                    followed += 1
                    if followed > MAX_SYMLINKS:
                        raise Refused(f"too many symlinks under {here}") from None
                    target = os.readlink(name, dir_fd=fd)
                    if target.startswith("/"):
                        for a in ancestors:
                            os.close(a)
                        ancestors = []
                        os.close(fd)
                        fd = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                        shown = ""
                    pending[0:0] = [p for p in target.split("/") if p]
                    continue
                ancestors.append(fd)
                fd = nfd
                shown = here
            return fd
        except BaseException:
            os.close(fd)
            raise
        finally:
            for a in ancestors:
                os.close(a)


# --------------------------------------------------------------------------- file operations

FILE_TYPES = {stat.S_IFREG: "file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink",
              stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character special file",
              stat.S_IFBLK: "block special file"}


def describe(st: os.stat_result) -> dict[str, Any]:
    return {"type": FILE_TYPES.get(stat.S_IFMT(st.st_mode), "unknown"), "uid": st.st_uid, "gid": st.st_gid,
            "owner": user_name(st.st_uid), "group": group_name(st.st_gid),
            "mode": f"{stat.S_IMODE(st.st_mode):04o}", "size": st.st_size, "mtime": st.st_mtime}


def _open_regular(parent_fd: int, name: str, st: os.stat_result) -> int:
    """An O_RDONLY fd of the regular file ``name`` that ``st`` described (never a link)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent_fd)
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
        os.close(fd)
        raise Refused("changed while it was read")
    return fd


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _error_text(exc: BaseException, path: str) -> str:
    if isinstance(exc, Refused):
        text = str(exc)
        return text if text.startswith(("/", "parent /")) else f"{path}: {text}"
    if isinstance(exc, OSError):
        return f"{path}: {exc.strerror or exc}"
    return f"{path}: {type(exc).__name__}: {exc}"


def handle_stat(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """``paths``; ``sha256``: also hash regular files. Result ``{"paths": {path: entry}}``,
    entry None (absent, or a parent is absent), a ``describe()`` dict, or ``{"error"}``."""
    cache = ParentCache()
    out: dict[str, Any] = {}
    try:
        for path in req["paths"]:
            try:
                parent, name = cache.parent(path)
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                entry = describe(st)
                if req.get("sha256") and stat.S_ISREG(st.st_mode):
                    fd = _open_regular(parent, name, st)
                    try:
                        digest = hashlib.sha256()
                        while True:
                            chunk = os.read(fd, 1 << 20)
                            if not chunk:
                                break
                            digest.update(chunk)
                    finally:
                        os.close(fd)
                    entry["sha256"] = digest.hexdigest()
                out[path] = entry
            except FileNotFoundError:
                out[path] = None
            except OSError as exc:
                if exc.errno == errno.ENOTDIR:
                    out[path] = None
                else:
                    out[path] = {"error": _error_text(exc, path)}
            except ParentNotDirectory:
                out[path] = None
            except Refused as exc:
                out[path] = {"error": str(exc)}
    finally:
        cache.close()
    return {"paths": out}


def handle_read_files(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """``paths``. Result ``{"files": {path: entry}}``: None when absent, ``{"data": b64}``,
    or ``{"error"}`` (not a regular file, a symlink, an unsafe parent)."""
    cache = ParentCache()
    out: dict[str, Any] = {}
    try:
        for path in req["paths"]:
            try:
                parent, name = cache.parent(path)
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    kind = FILE_TYPES.get(stat.S_IFMT(st.st_mode), "unknown")
                    raise Refused(f"{path} is a {kind}, not a regular file")
                fd = _open_regular(parent, name, st)
                try:
                    out[path] = {"data": b64(_read_all(fd))}
                finally:
                    os.close(fd)
            except (FileNotFoundError, ParentNotDirectory):
                out[path] = None
            except (OSError, Refused) as exc:
                if isinstance(exc, OSError) and exc.errno == errno.ENOTDIR:
                    out[path] = None
                else:
                    out[path] = {"error": _error_text(exc, path)}
    finally:
        cache.close()
    return {"files": out}


# Temporary files being written right now: (parent dir fd, name) by the temp file's fd.
# ``Agent.shutdown`` removes them, so a controller killed mid-apply (its end of the pipe
# closes, or systemd sends SIGTERM to the unit's processes) leaves no ``.name.reconciler-*``
# behind next to the files it manages.
_IN_FLIGHT: dict[int, tuple[int, str, tuple[int, int]]] = {}
_IN_FLIGHT_LOCK = threading.Lock()
# The name of a temporary file: ".NAME.reconciler-" and 12 hex digits.
_TEMPORARY = re.compile(r"\..+\.reconciler-[0-9a-f]{12}")


def remove_in_flight_temporaries() -> None:
    with _IN_FLIGHT_LOCK:
        items = list(_IN_FLIGHT.items())
    for fd, (parent, tmp, _key) in items:
        with contextlib.suppress(OSError):
            left = os.stat(tmp, dir_fd=parent, follow_symlinks=False)
            mine = os.fstat(fd)
            if (left.st_dev, left.st_ino) == (mine.st_dev, mine.st_ino):  # ours, and only ours
                os.unlink(tmp, dir_fd=parent)


def _sweep(dir_fd: int) -> None:
    rfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        names = [n for n in os.listdir(rfd) if _TEMPORARY.fullmatch(n)]
    finally:
        os.close(rfd)
    uid = os.geteuid()
    for name in names:
        with contextlib.suppress(OSError), _IN_FLIGHT_LOCK:
            left = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            busy = {key for _p, _t, key in _IN_FLIGHT.values()}
            if (stat.S_ISREG(left.st_mode) and left.st_nlink == 1 and left.st_uid == uid
                    and (left.st_dev, left.st_ino) not in busy):
                os.unlink(name, dir_fd=dir_fd)


def _write_one(cache: ParentCache, item: dict[str, Any]) -> None:
    path = item["path"]
    uid = resolve_user(item.get("owner", 0))
    gid = resolve_group(item.get("group", 0))
    mode = parse_mode(item.get("mode", "0644"))
    data = unb64(item.get("data"))
    parent, name = cache.parent(path, create=True, dir_mode=parse_mode(item.get("dir_mode", "0755")))
    try:
        current = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        current = None
    if current is not None and stat.S_ISDIR(current.st_mode):
        raise Refused(f"{path} exists and is a directory")
    cache.sweep_leftovers(parent)
    tmp = f".{name[:120]}.reconciler-{os.urandom(6).hex()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with _IN_FLIGHT_LOCK:  # created and registered at once: a sweep never sees it unregistered
        fd = os.open(tmp, flags, 0o600, dir_fd=parent)
        created = os.fstat(fd)
        _IN_FLIGHT[fd] = (parent, tmp, (created.st_dev, created.st_ino))
    renamed = False
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)  # after fchown, which clears set-id bits
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        mine = os.fstat(fd)
        os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        renamed = True
        now = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino):
            raise Refused(f"{path} was swapped while it was written (its directory is writable by "
                          "another user); the content written is not in place")
        cache.touch(parent)
    except BaseException:
        if not renamed:
            try:  # remove our temporary file, and only ours
                left = os.stat(tmp, dir_fd=parent, follow_symlinks=False)
                if (left.st_dev, left.st_ino) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
                    os.unlink(tmp, dir_fd=parent)
            except OSError:
                pass
        raise
    finally:
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT.pop(fd, None)
        os.close(fd)


WRITERS = 8  # files written at once: their fsyncs overlap (one journal commit for many)


def handle_write_files(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """``files``: ``[{path, data(b64), mode, owner, group, dir_mode?, after?}]``, each
    written atomically, several at once; ``after`` is the index of an earlier file that
    must have been written first (else this one is skipped). Missing parents are created
    root-owned with ``dir_mode``. Result ``{"errors": [None | text, ...]}`` in the files'
    order."""
    files = req["files"]
    cache = ParentCache()
    errors: list[str | None] = [None] * len(files)
    done = [threading.Event() for _ in files]

    def write(n: int) -> None:
        item = files[n]
        try:
            after = item.get("after")
            if after is not None:
                if not 0 <= after < n:
                    raise Refused(f"'after' must name an earlier file, got {after}")
                done[after].wait()  # earlier, so already taken by a worker: no deadlock
                if errors[after] is not None:
                    errors[n] = f"{item.get('path')}: not written, because {files[after].get('path')} was not"
                    return
            _write_one(cache, item)
        except (OSError, Refused, ValueError, KeyError) as exc:
            errors[n] = _error_text(exc, item.get("path", "?"))
        finally:
            done[n].set()

    try:
        _in_workers(write, len(files))
        cache.sync_touched()
    finally:
        cache.close()
    return {"errors": errors}


def _in_workers(work: Callable[[int], None], count: int) -> None:
    """work(0..count-1) on up to WRITERS threads, taken in order."""
    if count <= 1:
        for n in range(count):
            work(n)
        return
    taken = iter(range(count))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                n = next(taken, None)
            if n is None:
                return
            work(n)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(WRITERS, count))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _ensure_dir(cache: ParentCache, item: dict[str, Any]) -> None:
    path = item["path"]
    uid = resolve_user(item.get("owner", 0))
    gid = resolve_group(item.get("group", 0))
    mode = parse_mode(item.get("mode", "0755"))
    parent, name = cache.parent(path, create=True)
    try:
        os.mkdir(name, 0o700, dir_fd=parent)  # restrictive until owner and mode are set
        cache.touch(parent)
    except FileExistsError:
        pass
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise Refused(f"{path} is a symlink (owned by uid {st.st_uid}); refusing to follow it") from None
        kind = FILE_TYPES.get(stat.S_IFMT(st.st_mode), "unknown")
        raise Refused(f"{path} exists and is a {kind}, not a directory") from None
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def handle_ensure_dirs(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """``dirs``: ``[{path, owner, group, mode}]``: created when missing (parents too, root
    0755), then owner and mode set through an O_NOFOLLOW|O_DIRECTORY descriptor.
    Result ``{"errors": [...]}``."""
    cache = ParentCache()
    errors: list[str | None] = []
    try:
        for item in req["dirs"]:
            try:
                _ensure_dir(cache, item)
                errors.append(None)
            except (OSError, Refused, ValueError) as exc:
                errors.append(_error_text(exc, item.get("path", "?")))
        cache.sync_touched()
    finally:
        cache.close()
    return {"errors": errors}


def handle_remove(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """``paths``; ``kind``: ``file`` (unlink anything but a directory; the default),
    ``directory`` (rmdir, only when empty) or ``any``. An absent path is fine.
    Result ``{"errors": [...]}``."""
    kind = req.get("kind", "file")
    cache = ParentCache()
    errors: list[str | None] = []
    try:
        for path in req["paths"]:
            try:
                parent, name = cache.parent(path)
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    if kind == "file":
                        raise Refused(f"{path} is a directory; not removed")
                    try:
                        os.rmdir(name, dir_fd=parent)
                    except OSError as exc:
                        if exc.errno != errno.ENOTEMPTY:
                            raise
                        raise Refused(f"{path}: Directory not empty; not removed (only empty directories are "
                                      "pruned; its contents are left alone)") from None
                else:
                    if kind == "directory":
                        what = FILE_TYPES.get(stat.S_IFMT(st.st_mode), "unknown")
                        raise Refused(f"{path} is a {what}, not a directory; not removed")
                    os.unlink(name, dir_fd=parent)
                cache.touch(parent)
                errors.append(None)
            except (FileNotFoundError, ParentNotDirectory):
                errors.append(None)
            except (OSError, Refused) as exc:
                if isinstance(exc, OSError) and exc.errno == errno.ENOTDIR:
                    errors.append(None)
                else:
                    errors.append(_error_text(exc, path))
        cache.sync_touched()
    finally:
        cache.close()
    return {"errors": errors}


# --------------------------------------------------------------------------- processes

def handle_exec(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """``argv``, ``stdin`` (b64, optional), ``timeout`` (seconds). Result ``exit_code``,
    ``stdout``, ``stderr`` (b64) and ``timed_out``."""
    argv = [str(a) for a in req["argv"]]
    timeout = float(req.get("timeout") or 300)
    stdin = unb64(req.get("stdin"))
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, close_fds=True)
    except FileNotFoundError:
        return {"exit_code": 127, "stdout": "", "stderr": b64(f"{argv[0]}: command not found\n".encode()),
                "timed_out": False}
    except PermissionError as exc:
        return {"exit_code": 126, "stdout": "", "stderr": b64(f"{argv[0]}: {exc.strerror}\n".encode()),
                "timed_out": False}
    agent.track(req.get("id"), proc.pid)
    timed_out = False
    try:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(proc.pid)
            try:
                out, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                # Something outside the group still holds the pipes: give up on them.
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
                out, err = b"", b""
                proc.wait()
    finally:
        agent.untrack(req.get("id"), proc.pid)
    return {"exit_code": proc.returncode, "stdout": b64(out or b""), "stderr": b64(err or b""),
            "timed_out": timed_out}


def kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def handle_cancel(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """``target``: the id of a request the controller gave up on; its processes are killed."""
    return {"killed": agent.kill_request(req["target"])}


# --------------------------------------------------------------------------- locks

class HeldLock:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.abandoned = False
        self.acquired = False
        self.cond = threading.Condition()


def handle_lock(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """``path``, ``wait`` (seconds). Result ``{"lock": token}``, or ``{"busy": true}`` when
    another holder kept it for the whole wait. The waiter blocks in flock(2) (visible in
    /proc/locks); a wait that times out lets go as soon as it is granted."""
    path = req.get("path", "/run/lock/reconciler.lock")
    wait = float(req.get("wait", 60))
    cache = ParentCache()
    try:
        parent, name = cache.parent(path, create=True)
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
    finally:
        cache.close()
    held = HeldLock(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.acquired = True
    except BlockingIOError:
        def block() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                return
            with held.cond:
                if held.abandoned:
                    os.close(fd)
                    return
                held.acquired = True
                held.cond.notify_all()

        threading.Thread(target=block, daemon=True).start()
        with held.cond:
            held.cond.wait_for(lambda: held.acquired, timeout=wait)
            if not held.acquired:
                held.abandoned = True
                return {"busy": True}
    token = agent.add_lock(fd)
    return {"lock": token}


def handle_unlock(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    return {"released": agent.release_lock(int(req["lock"]))}


# --------------------------------------------------------------------------- streams

def handle_connect(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """``unix``: a socket path. Result ``{"stream": id}``; its bytes travel as D frames."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(float(req.get("timeout") or 15))
        sock.connect(req["unix"])
        sock.settimeout(None)
    except OSError as exc:
        sock.close()
        raise Refused(f"cannot connect to {req['unix']}: {exc.strerror or exc}") from None
    return {"stream": agent.add_stream(sock)}


def handle_close_stream(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    agent.close_stream(int(req["stream"]))
    return {}


def handle_ping(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    return {"pid": os.getpid()}


HANDLERS: dict[str, Callable[[dict[str, Any], Agent], dict[str, Any]]] = {
    "exec": handle_exec, "cancel": handle_cancel, "stat": handle_stat, "read_files": handle_read_files,
    "write_files": handle_write_files, "ensure_dirs": handle_ensure_dirs, "remove": handle_remove,
    "lock": handle_lock, "unlock": handle_unlock, "connect": handle_connect,
    "close_stream": handle_close_stream, "ping": handle_ping,
}


def handle_batch(req: dict[str, Any], agent: Agent) -> dict[str, Any]:
    """``ops``: requests (without ids of their own); ``sequential``: run them in order
    instead of in parallel. Result ``{"results": [reply, ...]}``, each reply shaped like
    a top-level one (``ok`` and ``result`` or ``error``)."""
    ops = req["ops"]
    results: list[dict[str, Any] | None] = [None] * len(ops)

    def one(n: int) -> None:
        sub = dict(ops[n])
        sub["id"] = req.get("id")  # cancel reaches the batch's processes too
        results[n] = agent.dispatch(sub)

    if req.get("sequential") or len(ops) == 1:
        for n in range(len(ops)):
            one(n)
    else:
        threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in range(len(ops))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return {"results": results}


HANDLERS["batch"] = handle_batch


# --------------------------------------------------------------------------- the agent

class Agent:
    def __init__(self, read_fd: Any, write_fd: int) -> None:
        self._in = read_fd
        self._out = write_fd
        self._write_lock = threading.Lock()
        self._state = threading.Lock()
        self._procs: dict[Any, set[int]] = {}
        self._locks: dict[int, int] = {}
        self._streams: dict[int, socket.socket] = {}
        self._next = 1

    # -- bookkeeping
    def track(self, request_id: Any, pid: int) -> None:
        with self._state:
            self._procs.setdefault(request_id, set()).add(pid)

    def untrack(self, request_id: Any, pid: int) -> None:
        with self._state:
            pids = self._procs.get(request_id)
            if pids is not None:
                pids.discard(pid)
                if not pids:
                    del self._procs[request_id]

    def kill_request(self, request_id: Any) -> int:
        with self._state:
            pids = list(self._procs.get(request_id, ()))
        for pid in pids:
            kill_group(pid)
        return len(pids)

    def _new_id(self) -> int:
        with self._state:
            n = self._next
            self._next += 1
            return n

    def add_lock(self, fd: int) -> int:
        token = self._new_id()
        with self._state:
            self._locks[token] = fd
        return token

    def release_lock(self, token: int) -> bool:
        with self._state:
            fd = self._locks.pop(token, None)
        if fd is None:
            return False
        os.close(fd)  # closing the only descriptor releases the flock
        return True

    def add_stream(self, sock: socket.socket) -> int:
        sid = self._new_id()
        with self._state:
            self._streams[sid] = sock
        threading.Thread(target=self._pump, args=(sid, sock), daemon=True).start()
        return sid

    def close_stream(self, sid: int) -> None:
        with self._state:
            sock = self._streams.pop(sid, None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _pump(self, sid: int, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                data = b""
            self.send_raw(encode_data(sid, data))
            if not data:
                self.close_stream(sid)
                return

    def _stream_input(self, payload: bytes) -> None:
        (sid,) = STREAM_ID.unpack_from(payload)
        data = payload[STREAM_ID.size:]
        with self._state:
            sock = self._streams.get(sid)
        if sock is None:
            return
        try:
            if data:
                sock.sendall(data)
            else:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close_stream(sid)

    # -- frames
    def send_raw(self, frame: bytes) -> None:
        with self._write_lock:
            view = memoryview(frame)
            while view:
                view = view[os.write(self._out, view):]

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(encode_json(message))

    def dispatch(self, req: dict[str, Any]) -> dict[str, Any]:
        handler = HANDLERS.get(req.get("op", ""))
        if handler is None:
            return {"ok": False, "error": f"unknown operation {req.get('op')!r}"}
        try:
            return {"ok": True, "result": handler(req, self)}
        except Refused as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # the controller reports it; the agent goes on
            return {"ok": False, "error": f"{req.get('op')}: {type(exc).__name__}: {exc}"}

    def _serve(self, req: dict[str, Any]) -> None:
        reply = self.dispatch(req)
        reply["id"] = req.get("id")
        try:
            self.send(reply)
        except OSError:
            self.shutdown()

    def _read_exact(self, n: int) -> bytes:
        chunks: list[bytes] = []
        while n:
            chunk = self._in.read(n)
            if not chunk:
                break
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def run(self) -> None:
        self.send({"id": 0, "ok": True, "result": {
            "version": PROTOCOL_VERSION, "pid": os.getpid(), "uid": os.geteuid(),
            "python": ".".join(str(n) for n in sys.version_info[:3])}})
        while True:
            try:
                frame = read_frame(self._read_exact)
            except (EOFError, OSError, ValueError):
                frame = None
            if frame is None:
                self.shutdown()
                return
            kind, payload = frame
            if kind == KIND_DATA:
                self._stream_input(payload)
                continue
            req = json.loads(payload)
            threading.Thread(target=self._serve, args=(req,), daemon=True).start()

    def shutdown(self) -> None:
        """The controller is gone: kill every process group we started, drop our locks."""
        with self._state:
            groups = [pid for pids in self._procs.values() for pid in pids]
            locks = list(self._locks.values())
            self._locks.clear()
        for pid in groups:
            kill_group(pid)
        remove_in_flight_temporaries()
        for fd in locks:
            with contextlib.suppress(OSError):
                os.close(fd)
        os._exit(0)


def main() -> None:
    os.umask(0o022)
    read_in = sys.stdin.buffer  # the bootstrap's buffered reader: it may hold the first bytes
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print must never corrupt the frame stream
    sys.stdout = sys.stderr
    agent = Agent(read_in, out_fd)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: agent.shutdown())
    agent.run()


if __name__ == "__main__":
    main()
