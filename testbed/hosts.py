"""Throwaway Debian test hosts: systemd containers reachable over SSH on 127.0.0.1.

    host = start_host()                 # boots the host image, waits until ready
    host.ssh_url                        # "ssh://root@127.0.0.1:PORT"
    host.key_path, host.known_hosts_path
    start_host(publish_ssh=False)       # sshd only on the Docker network (reach it via a bastion)
    host.container_ip, host.known_hosts_lines("web-internal")
    host.exec("systemctl is-active nginx")      # docker exec, for test assertions
    with host.ssh_client() as c: ...    # paramiko, key auth, strict host key checking
    host.remove()

Each host gets the test bed's package cache as its apt proxy for Debian's mirror
(``testbed/aptcache.py``; ``/etc/apt/apt.conf.d/00reconciler-testbed-proxy``).

Every container carries the labels ``io.reconciler.testbed=1``,
``io.reconciler.testbed.session=<session id>`` and ``io.reconciler.testbed.pid=<pid>``;
:func:`cleanup_session` (also registered with atexit, and run on SIGTERM/SIGHUP
when :func:`install_signal_handlers` was called) removes only this session's ones.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType, TracebackType

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from testbed import aptcache
from testbed.images import ensure_image
from testbed.util import (
    LABEL,
    PID_LABEL,
    SESSION_LABEL,
    TestbedError,
    format_failure,
    log,
    pipe,
    run,
    wait_until,
)

#: Container ports published (on 127.0.0.1, random host ports) besides 22, unless told otherwise.
DEFAULT_PORTS: tuple[int, ...] = (80, 443, 8080)
HOST_LABEL = "io.reconciler.testbed.host"

# The only way systemd-as-PID-1 containers work on this kind of machine (no --privileged).
SYSTEMD_RUN_FLAGS: tuple[str, ...] = (
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
    "--stop-signal",
    "SIGRTMIN+3",  # clean systemd shutdown on `docker stop`
)

READY_TIMEOUT = 180.0

# --------------------------------------------------------------------------- session state

_lock = threading.RLock()
_session_id: str | None = None
_session_dir: Path | None = None
_live: dict[str, TestHost] = {}
_name_counter = 0


def session_id() -> str:
    """Id of this process's test bed session (labels every container it starts)."""
    global _session_id
    with _lock:
        if _session_id is None:
            _session_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return _session_id


def session_dir() -> Path:
    """Per-session temp dir holding the SSH key and known_hosts files (removed at exit)."""
    global _session_dir
    with _lock:
        if _session_dir is None:
            _session_dir = Path(tempfile.mkdtemp(prefix=f"reconciler-testbed-{session_id()}-"))
            atexit.register(_remove_session_dir)
        return _session_dir


def _is_session_owner() -> bool:
    return _session_id is None or _session_id.startswith(f"{os.getpid()}-")


def _remove_session_dir() -> None:
    if _session_dir is not None and _is_session_owner():
        shutil.rmtree(_session_dir, ignore_errors=True)


def session_key() -> Path:
    """The session's ed25519 private key (OpenSSH format), generated once; ``.pub`` next to it."""
    key_path = session_dir() / "id_ed25519"
    with _lock:
        if not key_path.exists():
            key = Ed25519PrivateKey.generate()
            private = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            )
            public = key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(private)
            key_path.with_suffix(".pub").write_text(public.decode() + f" reconciler-testbed-{session_id()}\n")
    return key_path


def live_hosts() -> list[TestHost]:
    with _lock:
        return list(_live.values())


def cleanup_session() -> None:
    """Remove every container this session started (tracked hosts and anything with our session label).

    Does nothing in a forked child: only the process that started the session cleans it up.
    """
    if not _is_session_owner():
        return
    for host in live_hosts():
        with contextlib.suppress(Exception):
            host.remove()
    if _session_id is None:
        return
    with contextlib.suppress(Exception):
        ids = run(
            ["docker", "ps", "-aq", "--filter", f"label={SESSION_LABEL}={_session_id}"],
            check=False,
            timeout=60,
        ).stdout.split()
        if ids:
            run(["docker", "rm", "-f", "-v", *ids], check=False, timeout=120)


atexit.register(cleanup_session)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    cleanup_session()
    _remove_session_dir()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_signal_handlers() -> None:
    """On SIGTERM/SIGHUP remove this session's containers before dying (SIGINT raises
    KeyboardInterrupt, after which atexit does the same). Leaves custom handlers alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _on_signal)


# --------------------------------------------------------------------------- TestHost


def _docker_exec_argv(container: str, cmd: str | Sequence[str], *, interactive: bool) -> list[str]:
    argv = ["docker", "exec"]
    if interactive:
        argv.append("-i")
    argv.append(container)
    if isinstance(cmd, str):
        argv += ["bash", "-c", cmd]
    else:
        argv += list(cmd)
    return argv


class TestHost:
    """One running test host container (see the module docstring)."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, name: str, container_id: str, container_name: str, image: str,
                 publish_ssh: bool = True) -> None:
        self.name = name
        # False: sshd is reachable only over the Docker network (through another test host).
        self.publish_ssh = publish_ssh
        self.container_id = container_id
        self.container_name = container_name
        self.image = image
        self.key_path: Path = session_key()
        self.known_hosts_path: Path = session_dir() / f"{container_name}.known_hosts"
        self.ports: dict[int, int] = {}
        self.host_key_lines: list[str] = []
        self.host_keys: list[tuple[str, str]] = []  # (key type, base64) of the host's sshd
        self._container_ip: str | None = None

    # -- addressing -------------------------------------------------------------------

    @property
    def ssh_port(self) -> int:
        return self.published_port(22)

    @property
    def ssh_url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.ssh_port}"

    @property
    def container_ip(self) -> str:
        """The host's address on the Docker network (reachable from other test hosts)."""
        if self._container_ip is None:
            out = run(["docker", "inspect", "--format", "{{.NetworkSettings.IPAddress}}", self.container_id],
                      timeout=60).stdout.strip()
            if not out:
                raise TestbedError(f"{self}: no address on the default Docker network")
            self._container_ip = out
        return self._container_ip

    def known_hosts_lines(self, name: str, port: int = 22) -> list[str]:
        """known_hosts lines for this host's real keys under ``name`` (``[name]:port`` off 22)."""
        shown = name if port == 22 else f"[{name}]:{port}"
        return [f"{shown} {key_type} {key}" for key_type, key in self.host_keys]

    def published_port(self, container_port: int) -> int:
        """The 127.0.0.1 port on the machine that forwards to ``container_port`` (tcp)."""
        try:
            return self.ports[container_port]
        except KeyError:
            raise TestbedError(
                f"{self}: container port {container_port} is not published "
                f"(published: {sorted(self.ports)}); pass ports=(..., {container_port}) to start_host"
            ) from None

    def __repr__(self) -> str:
        port = self.ports.get(22, "?")
        return f"<TestHost {self.name} {self.container_name} ssh=127.0.0.1:{port}>"

    # -- docker-level operations ------------------------------------------------------

    def exec(
        self,
        cmd: str | Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float | None = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the host with ``docker exec`` (a string goes through ``bash -c``).

        For test assertions; the code under test reaches the host over SSH.
        """
        argv = _docker_exec_argv(self.container_id, cmd, interactive=input is not None)
        try:
            return run(argv, check=check, input=input, timeout=timeout)
        except TestbedError as exc:
            raise TestbedError(f"on test host {self.name}: {exc}") from None

    def refresh_ports(self) -> dict[int, int]:
        out = run(
            ["docker", "inspect", "--format", "{{json .NetworkSettings.Ports}}", self.container_id],
            timeout=60,
        ).stdout
        ports: dict[int, int] = {}
        for key, bindings in (json.loads(out) or {}).items():
            port, _, proto = key.partition("/")
            if proto != "tcp" or not bindings:
                continue
            for binding in bindings:
                if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
                    ports[int(port)] = int(binding["HostPort"])
                    break
        self.ports = ports
        return ports

    def is_running(self) -> bool:
        proc = run(
            ["docker", "inspect", "--format", "{{.State.Running}}", self.container_id],
            check=False,
            timeout=60,
        )
        return proc.returncode == 0 and proc.stdout.strip() == "true"

    def diagnostics(self) -> str:
        """Failed units and the journal tail (or the container log), for error messages."""
        if not self.is_running():
            logs = run(["docker", "logs", "--tail", "50", self.container_id], check=False, timeout=60)
            return f"container {self.container_name} is not running; docker logs:\n{logs.stdout}{logs.stderr}"
        proc = self.exec(
            "systemctl is-system-running; systemctl --failed --no-legend --no-pager; "
            "journalctl -b --no-pager -n 40 -p warning",
            check=False,
            timeout=60,
        )
        return proc.stdout + proc.stderr

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until systemd is up (running/degraded), sshd answers with the host keys we
        recorded in ``known_hosts_path``, and a key login works."""
        deadline = time.monotonic() + timeout
        state = ""
        while True:
            if not self.is_running():
                raise TestbedError(f"test host {self.name} stopped while booting:\n{self.diagnostics()}")
            try:
                state = self.exec(["systemctl", "is-system-running"], check=False, timeout=30).stdout.strip()
            except TestbedError as exc:  # a docker exec that timed out on a busy machine: retry
                state = f"unknown ({exc})"
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"test host {self.name} not ready after {timeout:.0f}s (systemd state {state!r}):\n"
                    f"{self.diagnostics()}"
                )
            time.sleep(0.3)
        if state == "degraded":
            failed = self.exec("systemctl --failed --no-legend --no-pager", check=False).stdout.strip()
            log(f"{self.name}: systemd is degraded; failed units: {failed}")
        self.refresh_ports()
        remaining = max(deadline - time.monotonic(), 10.0)
        wait_until(
            f"sshd on test host {self.name}",
            lambda: self._probe("systemctl is-active --quiet ssh && ls /etc/ssh/ssh_host_*_key.pub"),
            timeout=remaining,
            interval=0.3,
        )
        self._write_known_hosts()
        if self.publish_ssh:
            self._wait_ssh_login(timeout=max(deadline - time.monotonic(), 15.0))

    def _probe(self, cmd: str | Sequence[str]) -> bool:
        """True when ``cmd`` exits 0 in the host; False on failure or a timed-out docker exec."""
        try:
            return self.exec(cmd, check=False, timeout=30).returncode == 0
        except TestbedError:
            return False

    def _write_known_hosts(self) -> None:
        out = self.exec("cat /etc/ssh/ssh_host_*_key.pub").stdout
        self.host_keys = [(f[0], f[1]) for f in (line.split() for line in out.splitlines()) if len(f) >= 2]
        if not self.host_keys:
            raise TestbedError(f"test host {self.name} has no SSH host keys")
        # Unpublished: the keys as another test host reaches it (its address on the Docker network).
        lines = (self.known_hosts_lines("127.0.0.1", self.ssh_port) if self.publish_ssh
                 else self.known_hosts_lines(self.container_ip))
        self.host_key_lines = lines
        tmp = self.known_hosts_path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.known_hosts_path)

    def _wait_ssh_login(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.ssh_client(timeout=10) as client:
                    _, stdout, _ = client.exec_command("true", timeout=10)
                    if stdout.channel.recv_exit_status() == 0:
                        return
                    last: BaseException | str = "`true` failed"
            except (paramiko.SSHException, OSError, EOFError) as exc:
                last = exc
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"cannot log into test host {self.name} over SSH ({self.ssh_url}): {last!r}"
                )
            time.sleep(0.3)

    # -- SSH ----------------------------------------------------------------------------

    def ssh_client(self, timeout: float = 30) -> paramiko.SSHClient:
        """A connected paramiko client (root, session key, strict known_hosts). Close it
        (``with host.ssh_client() as c:``)."""
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts_path))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                "127.0.0.1",
                port=self.ssh_port,
                username="root",
                key_filename=str(self.key_path),
                look_for_keys=False,
                allow_agent=False,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
            )
        except BaseException:
            client.close()
            raise
        return client

    def ssh_exec(
        self, cmd: str, *, check: bool = True, input: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` over SSH (paramiko); returns a CompletedProcess like :meth:`exec`."""
        with self.ssh_client() as client:
            stdin, stdout, stderr = client.exec_command(cmd, timeout=timeout)
            if input is not None:
                stdin.write(input)
            stdin.channel.shutdown_write()
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            rc = stdout.channel.recv_exit_status()
        proc = subprocess.CompletedProcess(["ssh", self.ssh_url, cmd], rc, out, err)
        if check and rc != 0:
            raise TestbedError(f"on test host {self.name} (ssh): " + format_failure(proc.args, rc, out, err))
        return proc

    def ssh_argv(self) -> list[str]:
        """OpenSSH client command prefix for this host (append the remote command)."""
        return [
            "ssh",
            "-p",
            str(self.ssh_port),
            "-i",
            str(self.key_path),
            "-o",
            f"UserKnownHostsFile={self.known_hosts_path}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "root@127.0.0.1",
        ]

    # -- other users and sudo -----------------------------------------------------------

    def ssh_url_as(self, user: str) -> str:
        return f"ssh://{user}@127.0.0.1:{self.ssh_port}"

    def add_sudo_user(self, user: str = "deploy", *, password: str | None = None) -> None:
        """Add a login user with the session key who may become root with sudo: without a
        password (NOPASSWD), or with ``password`` (set through chpasswd's stdin, never on
        a command line). Done at runtime with docker exec; the image is not changed."""
        pub = session_key().with_suffix(".pub").read_text()
        self.exec(
            f"id -u {user} >/dev/null 2>&1 || useradd -m -s /bin/bash {user}; "
            f"install -d -m 0700 -o {user} -g {user} /home/{user}/.ssh; "
            f"cat > /home/{user}/.ssh/authorized_keys; "
            f"chown {user}:{user} /home/{user}/.ssh/authorized_keys; "
            f"chmod 0600 /home/{user}/.ssh/authorized_keys",
            input=pub, timeout=60,
        )
        rule = f"{user} ALL=(ALL:ALL) ALL" if password is not None else f"{user} ALL=(ALL:ALL) NOPASSWD: ALL"
        if password is not None:
            self.exec("chpasswd", input=f"{user}:{password}\n", timeout=60)
        self.exec(
            f"cat > /etc/sudoers.d/reconciler-test-{user} "
            f"&& chmod 0440 /etc/sudoers.d/reconciler-test-{user}"
            f" && visudo -cf /etc/sudoers.d/reconciler-test-{user} >/dev/null",
            input=rule + "\n", timeout=60,
        )

    def disable_root_login(self) -> None:
        """``PermitRootLogin no`` (a drop-in, read before the main config) and reload sshd."""
        self.exec("printf 'PermitRootLogin no\\n' > /etc/ssh/sshd_config.d/00-reconciler-test-no-root.conf "
                  "&& systemctl reload ssh", timeout=60)

    # -- inner Docker engine ----------------------------------------------------------

    def wait_docker(self, timeout: float = 90) -> None:
        """Wait until the host's own Docker engine answers."""
        try:
            wait_until(
                f"the Docker engine inside test host {self.name}",
                lambda: self._probe(["docker", "info"]),
                timeout=timeout,
            )
        except TestbedError as exc:
            status = self.exec("systemctl status docker --no-pager -l | tail -20", check=False).stdout
            raise TestbedError(f"{exc}\n{status}") from None

    def load_image(self, tag: str, timeout: float = 600) -> None:
        """``docker save TAG`` on the machine piped into ``docker load`` inside the host, over SSH
        (the OpenSSH client when installed, else paramiko)."""
        self.wait_docker()
        if shutil.which("ssh") is not None:
            try:
                pipe(["docker", "save", tag], [*self.ssh_argv(), "docker load"], timeout=timeout)
            except TestbedError as exc:
                raise TestbedError(f"loading {tag} into test host {self.name}: {exc}") from None
            return
        self._load_image_paramiko(tag, timeout)

    def _load_image_paramiko(self, tag: str, timeout: float) -> None:
        with tempfile.TemporaryFile() as save_err, self.ssh_client() as client:
            transport = client.get_transport()
            assert transport is not None
            chan = transport.open_session(window_size=16 << 20, max_packet_size=1 << 15)
            chan.settimeout(timeout)
            chan.exec_command("docker load")
            save = subprocess.Popen(
                ["docker", "save", tag], stdout=subprocess.PIPE, stderr=save_err, stdin=subprocess.DEVNULL
            )
            assert save.stdout is not None
            try:
                while chunk := save.stdout.read(1 << 20):
                    chan.sendall(chunk)
            finally:
                save.stdout.close()
                save.wait(timeout=60)
            chan.shutdown_write()
            out = chan.makefile("rb").read().decode(errors="replace")
            err = chan.makefile_stderr("rb").read().decode(errors="replace")
            rc = chan.recv_exit_status()
            chan.close()
            save_err.seek(0)
            if save.returncode != 0:
                raise TestbedError(
                    format_failure(
                        ["docker", "save", tag], save.returncode, "", save_err.read().decode(errors="replace")
                    )
                )
        if rc != 0:
            raise TestbedError(
                f"on test host {self.name}: " + format_failure(["docker", "load"], rc, out, err)
            )

    # -- lifecycle ----------------------------------------------------------------------

    def restart(self, timeout: float = READY_TIMEOUT) -> None:
        """``docker stop`` + ``docker start``; waits until ready again (published ports may change)."""
        run(["docker", "stop", "-t", "30", self.container_id], timeout=90)
        run(["docker", "start", self.container_id], timeout=90)
        self.wait_ready(timeout=timeout)

    def remove(self) -> None:
        """Remove the container (idempotent) and its known_hosts file."""
        proc = run(["docker", "rm", "-f", "-v", self.container_id], check=False, timeout=120)
        if proc.returncode != 0 and "No such container" not in proc.stderr:
            raise TestbedError(
                format_failure(
                    ["docker", "rm", "-f", "-v", self.container_id], proc.returncode, proc.stdout, proc.stderr
                )
            )
        with _lock:
            _live.pop(self.container_id, None)
        with contextlib.suppress(FileNotFoundError):
            self.known_hosts_path.unlink()

    def __enter__(self) -> TestHost:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()


# --------------------------------------------------------------------------- starting hosts


def _sanitize(name: str) -> str:
    cleaned = re.sub(r"[^a-zA-Z0-9-]+", "-", name).strip("-").lower()
    return cleaned[:40] or "host"


def _next_name() -> str:
    global _name_counter
    with _lock:
        _name_counter += 1
        return f"host{_name_counter}"


def _create_host(
    name: str | None,
    image: str | None,
    ports: Iterable[int],
    extra_args: Sequence[str],
    publish_ssh: bool = True,
) -> TestHost:
    """``docker run`` a host container and install the session key (does not wait)."""
    name = _sanitize(name) if name else _next_name()
    image = image or ensure_image("host")
    sid = session_id()
    container_name = f"reconciler-tb-{sid}-{name}-{uuid.uuid4().hex[:4]}"
    publish: list[str] = []
    for port in dict.fromkeys([22, *ports] if publish_ssh else [p for p in ports if p != 22]):
        publish += ["-p", f"127.0.0.1::{int(port)}"]
    argv = [
        "docker",
        "run",
        "-d",
        "--name",
        container_name,
        "--hostname",
        name,
        "--label",
        f"{LABEL}=1",
        "--label",
        f"{SESSION_LABEL}={sid}",
        "--label",
        f"{PID_LABEL}={os.getpid()}",
        "--label",
        f"{HOST_LABEL}={name}",
        *SYSTEMD_RUN_FLAGS,
        *publish,
        *extra_args,
        image,
        "/sbin/init",
    ]
    proc = run(argv, check=False, timeout=120)
    container_id = proc.stdout.strip()
    if proc.returncode != 0 or not container_id:
        # A half-created container may exist; remove it by name.
        run(["docker", "rm", "-f", "-v", container_name], check=False, timeout=60)
        raise TestbedError(
            "starting a test host failed: " + format_failure(argv, proc.returncode, proc.stdout, proc.stderr)
        )
    host = TestHost(
        name=name,
        container_id=container_id,
        container_name=container_name,
        image=image,
        publish_ssh=publish_ssh,
    )
    with _lock:
        _live[container_id] = host
    try:
        pub = session_key().with_suffix(".pub").read_text()
        host.exec(
            "umask 077 && mkdir -p /root/.ssh && cat > /root/.ssh/authorized_keys", input=pub, timeout=60
        )
        proxy = aptcache.proxy_url()
        if proxy is not None:
            host.exec(f"cat > {aptcache.PROXY_CONF}", input=aptcache.proxy_conf(proxy), timeout=60)
        host.refresh_ports()
    except BaseException:
        host.remove()
        raise
    return host


def start_host(
    name: str | None = None,
    *,
    image: str | None = None,
    ports: Iterable[int] = DEFAULT_PORTS,
    extra_args: Sequence[str] = (),
    timeout: float = READY_TIMEOUT,
    publish_ssh: bool = True,
) -> TestHost:
    """Start one test host and wait until it is ready (systemd up, SSH login works).

    ``ports``: container ports to publish on 127.0.0.1 besides 22 (random host ports).
    ``extra_args``: more ``docker run`` arguments (e.g. ``["-e", "X=1"]``).
    ``publish_ssh=False``: port 22 is not published, so the host is reachable over SSH
    only from other test hosts (at ``container_ip``); readiness then means sshd is
    running with its keys (no login from here is possible to check it).
    """
    host = _create_host(name, image, ports, extra_args, publish_ssh)
    try:
        host.wait_ready(timeout=timeout)
    except BaseException:
        host.remove()
        raise
    return host


def start_hosts(
    n: int,
    *,
    names: Sequence[str] | None = None,
    image: str | None = None,
    ports: Iterable[int] = DEFAULT_PORTS,
    timeout: float = READY_TIMEOUT,
) -> list[TestHost]:
    """Start ``n`` hosts (booting in parallel); all or nothing."""
    if names is not None and len(names) != n:
        raise TestbedError(f"start_hosts({n}): got {len(names)} names")
    ports = tuple(ports)
    image = image or ensure_image("host")
    hosts: list[TestHost] = []
    try:
        for i in range(n):
            hosts.append(_create_host(names[i] if names else None, image, ports, ()))
        with ThreadPoolExecutor(max_workers=max(n, 1)) as pool:
            for future in [pool.submit(h.wait_ready, timeout) for h in hosts]:
                future.result()
    except BaseException:
        for host in hosts:
            with contextlib.suppress(Exception):
                host.remove()
        raise
    return hosts


class HostFactory:
    """Starts hosts and remembers them, so :meth:`cleanup` removes them all
    (what the ``host_factory`` fixture hands out)."""

    def __init__(self, image: str | None = None) -> None:
        self.image = image
        self.hosts: list[TestHost] = []

    def __call__(
        self,
        name: str | None = None,
        *,
        ports: Iterable[int] = DEFAULT_PORTS,
        image: str | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = READY_TIMEOUT,
        publish_ssh: bool = True,
    ) -> TestHost:
        host = start_host(
            name,
            image=image or self.image,
            ports=ports,
            extra_args=extra_args,
            timeout=timeout,
            publish_ssh=publish_ssh,
        )
        self.hosts.append(host)
        return host

    def many(
        self,
        n: int,
        *,
        names: Sequence[str] | None = None,
        ports: Iterable[int] = DEFAULT_PORTS,
        timeout: float = READY_TIMEOUT,
    ) -> list[TestHost]:
        hosts = start_hosts(n, names=names, image=self.image, ports=ports, timeout=timeout)
        self.hosts.extend(hosts)
        return hosts

    def cleanup(self) -> None:
        errors: list[str] = []
        while self.hosts:
            host = self.hosts.pop()
            try:
                host.remove()
            except Exception as exc:
                errors.append(str(exc))
        if errors:
            raise TestbedError("removing test hosts failed:\n" + "\n".join(errors))


__all__ = [
    "DEFAULT_PORTS",
    "HostFactory",
    "TestHost",
    "cleanup_session",
    "install_signal_handlers",
    "live_hosts",
    "session_id",
    "session_key",
    "start_host",
    "start_hosts",
]
