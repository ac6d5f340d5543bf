"""Event sources that wake the controller before its next interval.

* ``RepoWatcher``: a repository on this machine; a commit rewrites a ref under
  ``.git/refs`` (or ``packed-refs``), and watchfiles (inotify) tells us at once.
* ``PathWatcher``: the managed paths of hosts reached with the ``local``
  transport. inotify cannot watch a file across an atomic rename (the inode is
  replaced), so the *parent directories* are watched, without recursion, and
  events are filtered down to the managed paths.
* ``DockerEventsWatcher``: container events (die, destroy, oom, pause, rename,
  update) for containers carrying the ``io.reconciler.managed`` label, on each
  host's own engine (the local socket, or over the host's SSH connection).
* ``ServiceEventsWatcher``: systemd's own record of unit state changes, followed on
  each host that runs managed services (``journalctl --follow`` of PID 1 over SSH, or
  locally): a managed service stopped, failed, restarted, or a daemon-reload (which
  is how ``systemctl enable/disable`` take effect) asks for a drift check at once,
  not at the next drift interval.

Watchers only *request* work; the loop coalesces requests, so our own writes
during an apply cost one extra (empty) plan, never a loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import structlog
import watchfiles

from reconciler.engine import make_transport, transport_key
from reconciler.errors import ReconcilerError
from reconciler.spec import LoadedSpec
from reconciler.transport.base import Transport
from reconciler.transport.local import LocalTransport
from reconciler.transport.ssh import SSHTransport

log = structlog.get_logger("reconciler.controller.watch")

OWNED_LABEL = "io.reconciler.managed"
DOCKER_EVENTS = ("die", "destroy", "oom", "pause", "rename", "update")
# watchfiles groups changes for up to DEBOUNCE ms and yields after STEP ms of quiet.
DEBOUNCE_MS = 200
STEP_MS = 30
STOP_CHECK_MS = 500


class _WatchThread:
    """A watchfiles loop on a daemon thread, stoppable through its stop event."""

    def __init__(self, name: str, paths: list[Path], *, recursive: bool,
                 accept: Callable[[str], bool], on_change: Callable[[set[str]], None]) -> None:
        self.stop_event = threading.Event()
        self.paths = paths
        self.recursive = recursive
        self.accept = accept
        self.on_change = on_change
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def _run(self) -> None:
        try:
            for changes in watchfiles.watch(
                    *self.paths, watch_filter=lambda _change, path: self.accept(path), debounce=DEBOUNCE_MS,
                    step=STEP_MS, stop_event=self.stop_event, rust_timeout=STOP_CHECK_MS,
                    recursive=self.recursive, raise_interrupt=False, ignore_permission_denied=True):
                if self.stop_event.is_set():
                    return
                self.on_change({path for _change, path in changes})
        except Exception as exc:  # the interval still covers us; say why events stopped
            log.warning("file watching stopped", paths=[str(p) for p in self.paths], error=str(exc))


class RepoWatcher:
    """Calls ``on_commit()`` when a ref of the local repository at ``git_dir`` changes."""

    def __init__(self, git_dir: Path, on_commit: Callable[[], None]) -> None:
        self.git_dir = git_dir

        def accept(path: str) -> bool:
            rel = os.path.relpath(path, git_dir)
            is_ref = rel.startswith("refs" + os.sep) or rel in ("packed-refs", "HEAD")
            return is_ref and not rel.endswith(".lock")

        self._watch = _WatchThread("controller-repo-watch", [git_dir], recursive=True, accept=accept,
                                   on_change=lambda _paths: on_commit())

    def start(self) -> None:
        self._watch.start()
        log.info("watching the local repository", path=str(self.git_dir))

    def stop(self) -> None:
        self._watch.stop()


def _existing_dir(path: Path) -> Path | None:
    for candidate in [path, *path.parents]:
        if candidate.is_dir():
            return candidate
    return None


def managed_paths(spec: LoadedSpec, hosts: Iterable[str]) -> set[str]:
    """Absolute paths the spec manages on ``hosts``: the ``path`` field of any resource
    that has one (files, directories, ...), read without knowing the kinds."""
    out: set[str] = set()
    for host in hosts:
        for entry in spec.entries_for(host):
            value = getattr(spec.resource_for_host(entry, host), "path", None)
            if isinstance(value, str) and value.startswith("/"):
                out.add(os.path.normpath(value))
    return out


class PathWatcher:
    """Calls ``on_drift(paths)`` when a managed path changes on this machine."""

    def __init__(self, on_drift: Callable[[set[str]], None]) -> None:
        self.on_drift = on_drift
        self._paths: frozenset[str] = frozenset()
        self._dirs: tuple[Path, ...] = ()
        self._watch: _WatchThread | None = None
        self._lock = threading.Lock()

    def set_paths(self, paths: set[str]) -> None:
        """Watch exactly these paths from now on (restarts the watch when the directories change)."""
        dirs = tuple(sorted({d for p in paths if (d := _existing_dir(Path(p).parent)) is not None}))
        with self._lock:
            self._paths = frozenset(paths)
            if dirs == self._dirs:
                return
            if self._watch is not None:
                self._watch.stop()
                self._watch = None
            self._dirs = dirs
            if not dirs:
                return
            self._watch = _WatchThread("controller-path-watch", list(dirs), recursive=False,
                                       accept=lambda p: os.path.normpath(p) in self._paths,
                                       on_change=self._changed)
            self._watch.start()
        log.info("watching managed paths for drift", paths=len(paths), directories=len(dirs))

    def _changed(self, paths: set[str]) -> None:
        hits = {p for p in paths if os.path.normpath(p) in self._paths}
        if hits:
            self.on_drift(hits)

    def stop(self) -> None:
        with self._lock:
            if self._watch is not None:
                self._watch.stop()
                self._watch = None
            self._dirs = ()


class _HostEvents:
    """One host's Docker event stream, reconnecting with backoff while the host has an engine."""

    def __init__(self, host: str, spec: LoadedSpec, on_event: Callable[[str, str], None]) -> None:
        self.host = host
        self.spec = spec
        self.on_event = on_event
        self.stopped = threading.Event()
        self._stream: Any = None
        self.thread = threading.Thread(target=self._run, name=f"controller-docker-{host}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def _run(self) -> None:
        delay = 5.0
        while not self.stopped.is_set():
            transport = make_transport(self.host, self.spec)
            try:
                client = transport.docker_client()
                self._stream = client.events(decode=True, filters={
                    "type": "container", "label": [OWNED_LABEL], "event": list(DOCKER_EVENTS)})
                log.info("watching Docker events", host=self.host)
                delay = 5.0
                for event in self._stream:
                    if self.stopped.is_set():
                        return
                    attrs = event.get("Actor", {}).get("Attributes", {})
                    self.on_event(self.host, f"{event.get('Action', '?')} {attrs.get('name', '?')}")
            except ReconcilerError as exc:
                log.debug("no Docker events", host=self.host, error=str(exc))
            except Exception as exc:  # the stream ends on timeouts and engine restarts
                log.debug("Docker event stream ended", host=self.host, error=f"{type(exc).__name__}: {exc}")
            finally:
                self._stream = None
                with contextlib.suppress(Exception):
                    transport.close()
            self.stopped.wait(delay)
            delay = min(delay * 2, 300.0)


class DockerEventsWatcher:
    """Calls ``on_event(host, description)`` for events of owned containers on the spec's hosts."""

    def __init__(self, on_event: Callable[[str, str], None]) -> None:
        self.on_event = on_event
        self._watchers: dict[str, tuple[str, _HostEvents]] = {}

    def set_spec(self, spec: LoadedSpec) -> None:
        wanted: dict[str, str] = {}
        for name, host in spec.hosts.items():
            if host.connect == "local" and not Path("/var/run/docker.sock").exists():
                continue
            wanted[name] = transport_key(name, spec)
        for name in list(self._watchers):
            if wanted.get(name) != self._watchers[name][0]:
                self._watchers.pop(name)[1].stop()
        for name, key in wanted.items():
            if name not in self._watchers:
                watcher = _HostEvents(name, spec, self.on_event)
                self._watchers[name] = (key, watcher)
                watcher.start()

    def stop(self) -> None:
        for _key, watcher in self._watchers.values():
            watcher.stop()
        self._watchers.clear()


# PID 1's own log lines: one per unit state change ("Stopped x.service", "x.service:
# Failed with result 'exit-code'", "Started ...") with UNIT= naming the unit, and
# "Reloading..." for a daemon-reload. Only the two fields used are sent. The stream
# starts REPLAY_SECONDS back (in the host's own clock), so a change made while the
# connection was being set up is not missed; a reconnect after a longer gap asks for
# a drift check by itself.
REPLAY_SECONDS = 30
JOURNAL_FOLLOW = ["journalctl", "--follow", f"--since=-{REPLAY_SECONDS}s", "--output=json",
                  "--output-fields=UNIT,MESSAGE", "--no-pager", "_PID=1"]
SERVICES_KIND = "services"


def managed_units(spec: LoadedSpec, host: str) -> frozenset[str]:
    """The systemd units the spec manages on ``host`` (its ``services`` entries)."""
    return frozenset(f"{e.id}.service" for e in spec.entries_for(host) if e.kind == SERVICES_KIND)


def unit_event(line: str, units: frozenset[str]) -> str | None:
    """What one ``journalctl -o json`` line says about the managed units, or None when
    it is about something else. A daemon-reload counts: it is how enable/disable act."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    unit, message = entry.get("UNIT"), entry.get("MESSAGE")
    message = message if isinstance(message, str) else ""
    if isinstance(unit, str) and unit in units:
        return f"{unit}: {message}"[:200]
    if unit is None and message.startswith("Reloading"):
        return "systemd: " + message[:100]
    return None


class _HostUnitEvents:
    """One host's stream of PID 1's journal, reconnecting with backoff."""

    def __init__(self, host: str, spec: LoadedSpec, units: frozenset[str],
                 on_event: Callable[[str, str], None]) -> None:
        self.host = host
        self.spec = spec
        self.units = units
        self.on_event = on_event
        self.stopped = threading.Event()
        self._close: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"controller-systemd-{host}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        with self._lock:
            close = self._close
        if close is not None:
            with contextlib.suppress(Exception):
                close()

    def _open(self, transport: Transport) -> tuple[Iterable[bytes], Callable[[], None]]:
        """Start ``JOURNAL_FOLLOW`` on the host: (its output lines, how to end it)."""
        if isinstance(transport, SSHTransport):
            ssh = transport.client.get_transport()
            if ssh is None:
                raise ReconcilerError(f"{transport.description}: connection lost")
            channel = ssh.open_session(timeout=15)
            channel.exec_command(transport.quote(JOURNAL_FOLLOW))
            return cast(Iterable[bytes], channel.makefile("rb")), channel.close
        if isinstance(transport, LocalTransport):
            proc = subprocess.Popen(JOURNAL_FOLLOW, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, close_fds=True)
            assert proc.stdout is not None

            def end() -> None:
                proc.kill()
                proc.wait(10)
                if proc.stdout is not None:
                    proc.stdout.close()
            return proc.stdout, end
        raise ReconcilerError(f"no journal stream over {transport.description}")

    def _run(self) -> None:
        delay = 5.0
        first = True
        while not self.stopped.is_set():
            transport = make_transport(self.host, self.spec)
            end: Callable[[], None] | None = None
            try:
                lines, end = self._open(transport)
                with self._lock:
                    self._close = end
                if self.stopped.is_set():
                    return
                log.info("watching systemd events", host=self.host, units=len(self.units))
                if not first:
                    self.on_event(self.host, "systemd event stream reconnected")
                first = False
                for raw in lines:
                    if self.stopped.is_set():
                        return
                    delay = 5.0
                    what = unit_event(raw.decode("utf-8", "replace"), self.units)
                    if what is not None:
                        self.on_event(self.host, what)
            except ReconcilerError as exc:
                log.debug("no systemd events", host=self.host, error=str(exc))
            except Exception as exc:  # the stream ends when the connection or the host goes
                log.debug("systemd event stream ended", host=self.host, error=f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._close = None
                if end is not None:
                    with contextlib.suppress(Exception):
                        end()
                with contextlib.suppress(Exception):
                    transport.close()
            self.stopped.wait(delay)
            delay = min(delay * 2, 300.0)


class ServiceEventsWatcher:
    """Calls ``on_event(host, description)`` when systemd reports a state change of a
    managed service (or a daemon-reload) on one of the spec's hosts."""

    def __init__(self, on_event: Callable[[str, str], None]) -> None:
        self.on_event = on_event
        self._watchers: dict[str, tuple[tuple[Any, ...], _HostUnitEvents]] = {}

    def set_spec(self, spec: LoadedSpec) -> None:
        wanted: dict[str, tuple[Any, ...]] = {}
        units_of: dict[str, frozenset[str]] = {}
        for name in spec.hosts:
            units = managed_units(spec, name)
            if units:
                units_of[name] = units
                wanted[name] = (transport_key(name, spec), units)
        for name in list(self._watchers):
            if wanted.get(name) != self._watchers[name][0]:
                self._watchers.pop(name)[1].stop()
        for name, key in wanted.items():
            if name not in self._watchers:
                watcher = _HostUnitEvents(name, spec, units_of[name], self.on_event)
                self._watchers[name] = (key, watcher)
                watcher.start()

    def stop(self) -> None:
        for _key, watcher in self._watchers.values():
            watcher.stop()
        self._watchers.clear()
