"""Long-lived transports for the controller, which also tell transient faults apart.

The engine catches host errors and reports them as text, which cannot say
whether retrying may help. The controller hands the engine these wrappers
instead: each remembers the ``TransportError`` / ``LockBusy`` it saw during the
current run, which makes the run's failure transient (retry with backoff)
rather than terminal. They also outlive a single engine run, so the SSH
connection is reused by every drift check instead of reconnecting each minute.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from reconciler.engine import make_transport, transport_key
from reconciler.errors import LockBusy, TransportError
from reconciler.spec import LoadedSpec
from reconciler.transport.base import HostLock, Transport

if TYPE_CHECKING:
    import docker

_TRANSIENT = (TransportError, LockBusy)

RECYCLE_AFTER_COMMANDS = 2000
"""A pooled connection is replaced, between runs, once it has run this many commands.
paramiko records every channel a connection ever opened (``Transport.channels_seen``)
and never forgets one (paramiko/paramiko#1685, open), so a connection kept for months
grows without bound: about 70 KB per thousand commands, found by tracemalloc in the
soak benchmark. One new SSH login every couple of thousand commands costs nothing."""


class PooledTransport(Transport):
    """Delegates to a real transport; records transient faults; ``close`` keeps it open."""

    def __init__(self, inner: Transport) -> None:
        super().__init__(inner.host_name)
        self.inner = inner
        self._faults: list[BaseException] = []
        self._faults_lock = threading.Lock()

    def _fault(self, exc: BaseException) -> None:
        with self._faults_lock:
            self._faults.append(exc)

    def take_faults(self) -> list[BaseException]:
        with self._faults_lock:
            faults, self._faults = self._faults, []
        return faults

    @property
    def description(self) -> str:
        return self.inner.description

    def _request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        # Every command, file operation and batch goes through here (Transport.run and
        # the file methods are built on it), so this is where transient faults are seen.
        try:
            return self.inner.send_request(message, timeout)
        except _TRANSIENT as exc:
            self._fault(exc)
            raise

    def lock(self, wait_seconds: float) -> HostLock:
        try:
            return self.inner.lock(wait_seconds)
        except _TRANSIENT as exc:
            self._fault(exc)
            raise

    def probe_new_connection(self, timeout: float = 10) -> bool:
        return self.inner.probe_new_connection(timeout)

    def docker_client(self) -> docker.DockerClient:
        try:
            return self.inner.docker_client()
        except _TRANSIENT as exc:
            self._fault(exc)
            raise

    def close(self) -> None:
        """Kept open for the next run; the pool closes it (``shutdown``)."""

    def shutdown(self) -> None:
        self.inner.close()

    def reachable(self) -> bool:
        """Can a trivial command run on the host right now?"""
        try:
            self.inner.run(["true"], timeout=15)
        except TransportError:
            return False
        except Exception:
            return True  # it answered, even if oddly
        return True


class TransportPool:
    """One pooled transport per host, replaced when the host's connection settings change
    or after ``RECYCLE_AFTER_COMMANDS`` commands."""

    def __init__(self, recycle_after: int = RECYCLE_AFTER_COMMANDS) -> None:
        self.recycle_after = recycle_after
        self._pool: dict[str, tuple[str, PooledTransport]] = {}

    def for_spec(self, spec: LoadedSpec) -> dict[str, PooledTransport]:
        out: dict[str, PooledTransport] = {}
        for name in spec.hosts:
            key = transport_key(name, spec)
            current = self._pool.get(name)
            worn = current is not None and current[1].inner.commands_run >= self.recycle_after
            if current is None or current[0] != key or worn:
                if current is not None:
                    with contextlib.suppress(Exception):  # a broken connection is replaced anyway
                        current[1].shutdown()
                current = (key, PooledTransport(make_transport(name, spec)))
                self._pool[name] = current
            current[1].take_faults()  # a new run starts with a clean slate
            out[name] = current[1]
        return out

    def close(self) -> None:
        for _settings, transport in self._pool.values():
            # Closing a broken connection must not stop the shutdown.
            with contextlib.suppress(Exception):
                transport.shutdown()
        self._pool.clear()
