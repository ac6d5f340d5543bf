"""Helpers for the controller tests (no tests here).

Two ways to run the controller against real hosts:

* inside a test host, as the systemd service ``reconcile install-service`` sets up,
  watching a git repository on that host whose spec uses ``connect: local``
  (``HostRepo``, ``install_controller``, ``host_status``);
* on this machine as ``reconcile watch`` (a subprocess), with a repository in a
  temporary directory and a spec that reaches the test host over SSH
  (``LocalRepo``, ``WatchProcess``). The host keeps its own inventory, so this
  never touches this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from reconciler.controller.state import StateStore
from testbed.hosts import TestHost
from testbed.wheelhouse import install_reconciler

RECONCILE = str(Path(sys.executable).with_name("reconcile"))
HOST_REPO = "/srv/gitops"
HOST_STATE = "/var/lib/reconciler/controller"
UNIT = "reconciler-controller.service"
LOCAL_HOSTS_YAML = "hosts:\n  local:\n    connect: local\n"

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 0.2,
             explain: Callable[[], str] = lambda: "") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``explain()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}\n{explain()}")


def files_yaml(files: dict[str, str], **extra: str) -> str:
    """A ``files:`` spec document; ``extra`` adds per-file keys (same for all), e.g. mode."""
    lines = ["files:"]
    for path, content in files.items():
        lines.append(f"  - path: {path}")
        lines.append(f"    content: {json.dumps(content)}")
        lines.extend(f"    {k}: {json.dumps(v)}" for k, v in extra.items())
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ in the host

class HostRepo:
    """A git repository on a test host, committed to the way an operator would (docker exec)."""

    def __init__(self, host: TestHost, path: str = HOST_REPO) -> None:
        self.host = host
        self.path = path

    def init(self) -> HostRepo:
        self.host.exec(["sh", "-c", 'mkdir -p "$1" && cd "$1" && git init -q -b main && '
                        'git config user.email ops@example.com && git config user.name Ops', "sh", self.path])
        return self

    def write(self, rel: str, text: str) -> None:
        self.host.exec(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", f"{self.path}/{rel}"],
                       input=text)

    def commit(self, message: str, *extra_args: str) -> str:
        self.host.exec(["git", "-C", self.path, "add", "-A"])
        self.host.exec(["git", "-C", self.path, "commit", "-q", *extra_args, "-m", message])
        return self.host.exec(["git", "-C", self.path, "rev-parse", "HEAD"]).stdout.strip()


def install_controller(host: TestHost, *flags: str) -> None:
    """Install reconciler on the host and start the controller service on ``HOST_REPO``."""
    install_reconciler(host)
    host.exec(["reconcile", "install-service", "--repo", HOST_REPO, "--path", "specs", *flags])


def host_status(host: TestHost) -> dict[str, Any]:
    proc = host.exec(["reconcile", "status", "--state-dir", HOST_STATE, "--output", "json"], check=False)
    if proc.returncode != 0:
        return {}
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def host_history(host: TestHost) -> list[dict[str, Any]]:
    proc = host.exec(["reconcile", "history", "--state-dir", HOST_STATE, "--limit", "0", "--output", "json"])
    data: list[dict[str, Any]] = json.loads(proc.stdout)
    return data


def journal(host: TestHost) -> str:
    return host.exec(["journalctl", "-u", UNIT, "--no-pager", "-n", "60"], check=False).stdout


def applied_revision(status: dict[str, Any]) -> str | None:
    applied = status.get("last_applied") or {}
    return applied.get("revision")


def wait_applied(host: TestHost, sha: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(f"the controller to apply {sha[:12]}",
                    lambda: (s := host_status(host)) and applied_revision(s) == sha and not s.get("in_flight")
                    and s, timeout=timeout, explain=lambda: journal(host))


def read_file(host: TestHost, path: str) -> str | None:
    proc = host.exec(["cat", path], check=False)
    return proc.stdout if proc.returncode == 0 else None


def main_pid(host: TestHost) -> int:
    return int(host.exec(["systemctl", "show", "-p", "MainPID", "--value", UNIT]).stdout.strip() or 0)


# ------------------------------------------------------------------------------ on this machine

def ssh_hosts_yaml(host: TestHost, name: str = "web", port: int | None = None,
                   known_hosts: Path | None = None) -> str:
    url = host.ssh_url if port is None else f"ssh://root@127.0.0.1:{port}"
    known = known_hosts or host.known_hosts_path
    return (f"hosts:\n  {name}:\n    connect: {json.dumps(url)}\n"
            f"    identity_file: {json.dumps(str(host.key_path))}\n"
            f"    known_hosts: {json.dumps(str(known))}\n")


class LocalRepo:
    """A git repository in a temporary directory on this machine."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "ops@example.com")
        self.git("config", "user.name", "Ops")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,
                              text=True).stdout

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_status(state: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((state / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data


def read_history(state: Path) -> list[dict[str, Any]]:
    """Every entry, as ``reconcile history --limit 0`` reads them (segments, the open burst)."""
    return StateStore(state).read_history()


class WatchProcess:
    """``reconcile watch`` on this machine as a subprocess; stopped with SIGTERM."""

    def __init__(self, repo: Path | str, state: Path, *flags: str, config: Path | None = None) -> None:
        self.state = state
        self.log_path = state.parent / f"{state.name}.log"
        argv = [RECONCILE, "watch", "--repo", str(repo), "--path", "specs", "--state-dir", str(state),
                "--log-format", "json", *flags]
        if config is not None:
            argv += ["--config", str(config)]
        self._log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> WatchProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_once(repo: Path, state: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """One controller pass (``reconcile watch --once``)."""
    return subprocess.run([RECONCILE, "watch", "--once", "--repo", str(repo), "--path", "specs",
                           "--state-dir", str(state), "--listen", "off", "--log-format", "json", *flags],
                          capture_output=True, text=True, timeout=600, check=False)


class TcpForwarder:
    """A switchable TCP forwarder on 127.0.0.1 to a test host's published port, to cut
    and restore the network path for real (connection refused while off)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def enable(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def disable(self) -> None:
        """Stop listening and cut every forwarded connection."""
        with self._lock:
            server, self._server = self._server, None
            conns, self._conns = self._conns, []
        for sock in [s for s in [server] if s is not None] + conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def known_hosts(self, host: TestHost, path: Path) -> Path:
        """A known_hosts file for the host as reached through this forwarder."""
        lines = [line.replace(f"[127.0.0.1]:{host.ssh_port}", f"[127.0.0.1]:{self.port}")
                 for line in host.host_key_lines]
        path.write_text("\n".join(lines) + "\n")
        return path


class HangingServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers (a hung
    git server, HTTP or SSH alike): connections stay open, silent, until ``close``."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="hanging-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)  # held open and never written to

    def close(self) -> None:
        # shutdown() wakes the accept() under way (close() alone does not, on Linux);
        # joining the thread means no connection is accepted after the ones closed here,
        # which would otherwise be garbage collected in a later test (ResourceWarning).
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=10)
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> HangingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def processes_mentioning(text: str) -> list[str]:
    """Command lines of this machine's processes that contain ``text`` (from /proc)."""
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline.strip())
    return found
