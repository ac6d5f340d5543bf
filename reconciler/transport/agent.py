"""The controller's side of the host agent: start it over a byte channel, then talk frames.

``AgentClient.start`` runs the handshake on a channel whose remote end is
``python3 -I -S -c BOOTSTRAP`` (possibly behind ``sudo``): it waits for the boot
marker on stdout (answering one sudo password prompt on stderr when a password is
configured), sends the program's source, and waits for the hello frame. After
that one reader thread dispatches replies to the requests waiting for them, so any
number of threads can have requests in flight on the one channel.

Every request has a deadline: the controller waits for the reply at most the
request's own timeout plus ``GRACE`` seconds, then gives up on it
(TransportError), asks the agent to kill what that request started, and goes on.
When the channel breaks, every waiting request fails at once with TransportError.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from reconciler.errors import TransportError
from reconciler.transport import agent_program as program

log = structlog.get_logger("reconciler.transport")

GRACE = 15.0
START_TIMEOUT = 30.0
SUDO_PROMPT = "[reconciler] sudo password:"
_SOURCE = Path(program.__file__).read_bytes()


class ByteChannel(Protocol):
    """The two directions of the agent's stdin/stdout."""

    def send(self, data: bytes) -> None: ...
    def recv(self, n: int) -> bytes: ...  # b"" at EOF
    def close(self) -> None: ...


class NoPython(Exception):
    """The host has no usable python3: use plain shell commands instead."""


@dataclass
class StartProblem:
    """What the channel said when the agent did not start."""

    exit_code: int | None
    stderr: str


class _Reader:
    def __init__(self, channel: ByteChannel) -> None:
        self._channel = channel
        self._buf = bytearray()

    def _fill(self) -> bool:
        chunk = self._channel.recv(1 << 16)
        if not chunk:
            return False
        self._buf += chunk
        return True

    def readline(self, limit: int = 1 << 16) -> bytes:
        while b"\n" not in self._buf:
            if len(self._buf) > limit or not self._fill():
                line, self._buf = bytes(self._buf), bytearray()
                return line
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        return line + b"\n"

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                break
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data


class _Waiter:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: dict[str, Any] | None = None


class _Stream:
    """One relayed stream: our end of a socketpair, fed in order by a writer thread."""

    def __init__(self, client: AgentClient, sid: int, sock: socket.socket) -> None:
        self.client = client
        self.sid = sid
        self.sock = sock
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._write_loop, daemon=True, name=f"agent-stream-{sid}-in").start()
        threading.Thread(target=self._read_loop, daemon=True, name=f"agent-stream-{sid}-out").start()

    def _write_loop(self) -> None:
        while True:
            data = self.inbox.get()
            try:
                if data is None:
                    self.sock.close()
                    return
                if data:
                    self.sock.sendall(data)
                else:
                    self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self.sock.close()
                return

    def _read_loop(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                data = b""
            try:
                self.client.send_raw(program.encode_data(self.sid, data))
            except TransportError:
                return
            if not data:
                return


class AgentClient:
    def __init__(self, channel: ByteChannel, host: str, *,
                 on_close: Callable[[], None] | None = None) -> None:
        self.channel = channel
        self.host = host
        self._reader = _Reader(channel)
        self._send_lock = threading.Lock()
        self._state = threading.Lock()
        self._pending: dict[int, _Waiter] = {}
        self._streams: dict[int, _Stream] = {}
        self._ids = itertools.count(1)
        self._dead: str | None = None
        self._on_close = on_close
        self.hello: dict[str, Any] = {}
        self.grace = GRACE
        self.stderr_tail: Callable[[], str] = lambda: ""

    @property
    def alive(self) -> bool:
        """False once the channel broke or was closed (checked on the channel itself too:
        the reader thread may not have seen the EOF yet)."""
        is_open = getattr(self.channel, "is_open", None)
        return self._dead is None and (is_open is None or bool(is_open()))

    # ------------------------------------------------------------------ start
    def start(self, *, stderr_tail: Callable[[], str], prompts: Callable[[], int],
              exit_status: Callable[[], int | None], password: bytes | None = None,
              timeout: float = START_TIMEOUT) -> None:
        """Handshake; raises NoPython (fall back to shell), TransportError, or StartFailed."""
        self.stderr_tail = stderr_tail
        booted = threading.Event()
        boot_line: list[bytes] = []

        def wait_boot() -> None:
            try:
                while True:
                    line = self._reader.readline()
                    if not line or line.rstrip(b"\n") == program.BOOT_MARKER:
                        boot_line.append(line)
                        return
            except OSError:
                boot_line.append(b"")
            finally:
                booted.set()

        threading.Thread(target=wait_boot, daemon=True, name=f"agent-boot-{self.host}").start()
        deadline = time.monotonic() + timeout
        answered = 0
        while not booted.wait(0.02):
            seen = prompts()
            if seen > answered:
                if password is None or answered >= 1:
                    self.channel.close()
                    raise StartFailed(StartProblem(None, stderr_tail()), password_rejected=answered >= 1)
                self.channel.send(password + b"\n")
                answered = seen
            if time.monotonic() > deadline:
                self.channel.close()
                raise TransportError(f"{self.host}: the host agent did not start within {timeout:.0f} s "
                                     f"({stderr_tail().strip() or 'no output'})")
        if not boot_line or not boot_line[0]:
            code = exit_status()
            problem = StartProblem(code, stderr_tail())
            self.channel.close()
            if code in (127, program.EXIT_OLD_PYTHON) or "python3: command not found" in problem.stderr:
                raise NoPython(problem.stderr.strip() or f"exit {code}")
            raise StartFailed(problem)
        self.channel.send(b"%d\n" % len(_SOURCE) + _SOURCE)
        waiter = _Waiter()
        self._pending[0] = waiter
        threading.Thread(target=self._read_loop, daemon=True, name=f"agent-reader-{self.host}").start()
        if not waiter.event.wait(max(deadline - time.monotonic(), 5.0)) or waiter.reply is None:
            self.close()
            raise TransportError(f"{self.host}: the host agent did not answer after start "
                                 f"({stderr_tail().strip() or 'no output'})")
        if not waiter.reply.get("ok"):
            raise TransportError(f"{self.host}: the host agent failed to start: {waiter.reply.get('error')}")
        self.hello = waiter.reply.get("result") or {}
        if self.hello.get("version") != program.PROTOCOL_VERSION:
            self.close()
            raise TransportError(f"{self.host}: host agent speaks protocol {self.hello.get('version')}, "
                                 f"want {program.PROTOCOL_VERSION}")

    # ------------------------------------------------------------------ frames
    def _read_loop(self) -> None:
        reason = "the connection to the host agent closed"
        try:
            while True:
                frame = program.read_frame(self._reader.read_exact)
                if frame is None:
                    break
                kind, payload = frame
                if kind == program.KIND_DATA:
                    (sid,) = program.STREAM_ID.unpack_from(payload)
                    stream = self._streams.get(sid)
                    if stream is not None:
                        data = payload[program.STREAM_ID.size:]
                        stream.inbox.put(data)
                        if not data:
                            self._streams.pop(sid, None)
                    continue
                reply = json.loads(payload)
                with self._state:
                    waiter = self._pending.pop(int(reply.get("id", -1)), None)
                if waiter is not None:
                    waiter.reply = reply
                    waiter.event.set()
        except (OSError, EOFError, ValueError) as exc:
            reason = f"the connection to the host agent broke: {exc}"
        self._die(reason)

    def _die(self, reason: str) -> None:
        tail = self.stderr_tail().strip()
        with self._state:
            if self._dead is not None:
                return
            self._dead = reason + (f" (agent stderr: {tail[-500:]})" if tail else "")
            pending, self._pending = self._pending, {}
            streams, self._streams = self._streams, {}
        for waiter in pending.values():
            waiter.event.set()
        for stream in streams.values():
            stream.inbox.put(None)
        with contextlib.suppress(Exception):
            self.channel.close()
        if self._on_close is not None:
            self._on_close()

    def send_raw(self, frame: bytes) -> None:
        if self._dead is not None:
            raise TransportError(f"{self.host}: {self._dead}")
        try:
            with self._send_lock:
                self.channel.send(frame)
        except OSError as exc:
            self._die(f"sending to the host agent failed: {exc}")
            raise TransportError(f"{self.host}: {self._dead}") from exc

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request; its reply (``ok`` and ``result`` or ``error``). Waits at most
        ``timeout + GRACE`` seconds."""
        rid = next(self._ids)
        waiter = _Waiter()
        with self._state:
            if self._dead is not None:
                raise TransportError(f"{self.host}: {self._dead}")
            self._pending[rid] = waiter
        self.send_raw(program.encode_json({**message, "id": rid}))
        if not waiter.event.wait(timeout + self.grace):
            with self._state:
                self._pending.pop(rid, None)
            with contextlib.suppress(TransportError):
                self.send_raw(program.encode_json({"op": "cancel", "target": rid, "id": next(self._ids)}))
            raise TransportError(f"{self.host}: the host agent did not answer `{_describe(message)}` within "
                                 f"{timeout + self.grace:.0f} s; gave up on it")
        if waiter.reply is None:
            raise TransportError(f"{self.host}: {self._dead}")
        return waiter.reply

    def open_stream(self, unix_path: str, timeout: float = 15.0) -> socket.socket:
        """A socket whose peer is ``unix_path`` on the host, relayed through the agent."""
        reply = self.request({"op": "connect", "unix": unix_path, "timeout": timeout}, timeout)
        if not reply.get("ok"):
            raise ConnectionError(str(reply.get("error")))
        sid = int(reply["result"]["stream"])
        ours, theirs = socket.socketpair()
        with self._state:
            self._streams[sid] = _Stream(self, sid, theirs)
        return ours

    def close(self) -> None:
        """Close stdin: the agent kills its processes, drops its locks and exits."""
        self._die("the host agent was closed")


class StartFailed(TransportError):
    def __init__(self, problem: StartProblem, *, password_rejected: bool = False) -> None:
        self.problem = problem
        self.password_rejected = password_rejected
        super().__init__(problem.stderr.strip() or f"exit {problem.exit_code}")


def _describe(message: dict[str, Any]) -> str:
    op = str(message.get("op"))
    if op == "exec":
        return " ".join(str(a) for a in message.get("argv", [])[:3])[:80]
    if op == "batch":
        return "batch of " + ", ".join(str(m.get("op")) for m in message.get("ops", [])[:6])
    return op
