"""Opening an SSH connection along a :class:`~reconciler.transport.sshconfig.Route`.

Each jump host is logged into with paramiko and the next hop is reached through a
``direct-tcpip`` channel of that connection (what ``ssh -J`` does, with no ``ssh``
binary). Every hop's host key is checked the same way:

* the spec's ``known_hosts`` file, when it lists the host (under its ``HostKeyAlias``
  or its address, ``[host]:port`` off port 22), decides alone; else the user's files
  (``UserKnownHostsFile``, default ``~/.ssh/known_hosts``); else the global ones
  (``/etc/ssh/ssh_known_hosts``). A key marked ``@revoked`` in any of them is refused.
* a host none of them lists is refused, or with ``accept-new`` its key is recorded
  (in the spec's file when there is one); a key that differs is always refused.

Connections to jump hosts are shared: one per jump path in this process, counted by
the targets using it and closed when the last of them closes
(:class:`JumpPool`). ``probe_new_connection`` uses a pool of its own, so it proves
that a brand-new login, bastion included, still works.
"""

from __future__ import annotations

import fnmatch
import hmac
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from reconciler.errors import TransportError
from reconciler.transport.sshconfig import Endpoint, HostKeyPolicy, Route

KEEPALIVE_SECONDS = 15

Release = Callable[[], None]


class RoutedClient(paramiko.SSHClient):
    """An SSH client whose socket is a channel through a jump host: closing it also
    gives back its hold on the jump connection."""

    def __init__(self, release: Release | None = None) -> None:
        super().__init__()
        self._release = release
        self._release_lock = threading.Lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            with self._release_lock:
                release, self._release = self._release, None
            if release is not None:
                release()


# ------------------------------------------------------------------------------------------
# Host keys

@dataclass
class KnownKeys:
    keys: dict[str, paramiko.PKey] = field(default_factory=dict)
    source: str | None = None  # the file the keys came from
    revoked: list[paramiko.PKey] = field(default_factory=list)


def _host_matches(patterns: list[str], name: str) -> bool:
    """OpenSSH's known_hosts matching: exact names, hashed names (``|1|salt|hash``),
    ``*``/``?`` wildcards, and ``!pattern`` which excludes the line outright."""
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if pattern.startswith("|1|"):
            hit = hmac.compare_digest(paramiko.HostKeys.hash_host(name, pattern), pattern)
        else:
            hit = fnmatch.fnmatchcase(name, pattern) if "*" in pattern or "?" in pattern else pattern == name
        if hit and negated:
            return False
        matched = matched or hit
    return matched


def _read_known_hosts(path: str, name: str, known: KnownKeys, *, take_keys: bool) -> bool:
    """Add what ``path`` says about ``name``; True when it lists a (non-revoked) key."""
    try:
        lines = Path(path).read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, UnicodeDecodeError) as exc:
        raise TransportError(f"cannot read known_hosts file {path}: {exc}") from exc
    found = False
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        revoked = line.startswith("@revoked")
        if line.startswith("@") and not revoked:
            continue  # @cert-authority: paramiko does not verify host certificates
        try:
            text = line.split(None, 1)[1] if revoked else line
            entry = paramiko.hostkeys.HostKeyEntry.from_line(text, lineno)
        except (paramiko.SSHException, IndexError):
            continue  # a key type paramiko cannot read: it can never match what it negotiates
        if entry is None or entry.key is None or not _host_matches(entry.hostnames, name):
            continue
        if revoked:
            known.revoked.append(entry.key)
        elif take_keys:
            known.keys.setdefault(entry.key.get_name(), entry.key)
            found = True
    return found


def known_host_keys(endpoint: Endpoint) -> KnownKeys:
    """The keys to accept for ``endpoint``, from the first group of files that lists it
    (spec file, then user files, then global files), and every revoked key."""
    name = endpoint.known_hosts_name
    known = KnownKeys()
    groups = [[endpoint.spec_known_hosts] if endpoint.spec_known_hosts else [],
              list(endpoint.user_known_hosts), list(endpoint.global_known_hosts)]
    for group in groups:
        for path in group:
            if _read_known_hosts(path, name, known, take_keys=not known.keys) and known.source is None:
                known.source = path
    return known


class _UnknownHostKey(paramiko.SSHException):
    pass


class _MissingKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko when no key is known: refuse, or record it (accept-new)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.endpoint.host_key is not HostKeyPolicy.ACCEPT_NEW:
            raise _UnknownHostKey(hostname)
        client.get_host_keys().add(hostname, key.get_name(), key)
        record = Path(self.endpoint.record_to)
        record.parent.mkdir(parents=True, exist_ok=True)
        with record.open("a") as fh:
            fh.write(f"{self.endpoint.known_hosts_name} {key.get_name()} {key.get_base64()}\n")


# ------------------------------------------------------------------------------------------
# Logging in

def _shown(path: str) -> str:
    home = os.path.expanduser("~")
    return "~" + path[len(home):] if home not in ("", "/") and path.startswith(home + os.sep) else path


def _agent_summary(endpoint: Endpoint) -> str:
    if not endpoint.use_agent:
        return "agent: not used, IdentitiesOnly"
    if not os.environ.get("SSH_AUTH_SOCK"):
        return "agent: none"
    try:
        agent = paramiko.Agent()
        try:
            count = len(agent.get_keys())
        finally:
            agent.close()
    except (paramiko.SSHException, OSError):
        return "agent: unreachable"
    return "agent: none" if count == 0 else f"agent: {count} key{'s' if count != 1 else ''}"


def _auth_failure(endpoint: Endpoint, exc: BaseException) -> str:
    tried = []
    for path in endpoint.identity_files:
        if os.path.exists(path):
            tried.append(_shown(path))
        elif endpoint.identities_named:
            tried.append(f"{_shown(path)} (missing)")
    keys = ", ".join(tried) or "none"
    detail = ""
    if isinstance(exc, paramiko.PasswordRequiredException):
        detail = " (a key is encrypted: load it into ssh-agent)"
    elif isinstance(exc, paramiko.BadAuthenticationType):
        detail = f" (the server accepts only {', '.join(exc.allowed_types)})"
    elif not isinstance(exc, paramiko.AuthenticationException):
        detail = f" ({exc})"
    return (f"{endpoint.url}: authentication failed for user {endpoint.user}; tried keys: {keys} "
            f"({_agent_summary(endpoint)}){detail}")


def login(endpoint: Endpoint, *, host_name: str, timeout: float, sock: paramiko.Channel | None = None,
          release: Release | None = None) -> paramiko.SSHClient:
    """Connect to ``endpoint`` (over ``sock`` when it is behind a jump host), check its
    host key and log in. Raises TransportError naming the endpoint and what failed."""
    client: paramiko.SSHClient = RoutedClient(release) if sock is not None else paramiko.SSHClient()
    known = known_host_keys(endpoint)
    # Keys go in under the name paramiko looks up (the address actually connected to), so it
    # also prefers the recorded key's type when negotiating.
    lookup = endpoint.hostname if endpoint.port == 22 else f"[{endpoint.hostname}]:{endpoint.port}"
    for key_type, key in known.keys.items():
        client.get_host_keys().add(lookup, key_type, key)
    client.set_missing_host_key_policy(_MissingKeyPolicy(endpoint))
    keys = [p for p in endpoint.identity_files if os.path.exists(p)]
    try:
        client.connect(endpoint.hostname, port=endpoint.port, username=endpoint.user,
                       key_filename=keys,  # type: ignore[arg-type]  # paramiko takes a list too
                       look_for_keys=False, allow_agent=endpoint.use_agent, sock=sock,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       channel_timeout=timeout)
    except BaseException as exc:
        transport = client.get_transport()
        at_auth = transport is not None and transport.is_active() and not transport.is_authenticated() \
            and not isinstance(exc, paramiko.BadHostKeyException | _UnknownHostKey)
        client.close()
        translated = _translate(exc, endpoint, host_name, known, at_auth=at_auth)
        if translated is exc:
            raise
        raise translated from exc
    transport = client.get_transport()
    assert transport is not None
    server_key = transport.get_remote_server_key()
    if any(server_key == k for k in known.revoked):
        client.close()
        raise TransportError(f"{endpoint.url}: host key {server_key.get_name()} is marked @revoked "
                             "in known_hosts")
    transport.set_keepalive(KEEPALIVE_SECONDS)
    return client


def _translate(exc: BaseException, endpoint: Endpoint, host_name: str, known: KnownKeys, *,
               at_auth: bool) -> BaseException:
    url = endpoint.url
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return exc
    if isinstance(exc, paramiko.BadHostKeyException):
        where = f"; the recorded key is in {known.source}" if known.source else ""
        return TransportError(f"{url}: host key CHANGED (possible man-in-the-middle): {exc}{where}")
    if isinstance(exc, _UnknownHostKey):
        if endpoint.strict_by_config:
            return TransportError(f"{url}: unknown host key; add it to known_hosts (~/.ssh/config sets "
                                  "StrictHostKeyChecking for it, which overrides `host_key: accept-new`)")
        return TransportError(f"{url}: unknown host key; add it to known_hosts or set "
                              f"`host_key: accept-new` on host {host_name}")
    if at_auth or isinstance(exc, paramiko.AuthenticationException):
        return TransportError(_auth_failure(endpoint, exc))
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # paramiko's own text is "[Errno None] Unable to connect to port N on ADDR";
        # the per-address errors say why (connection refused, no route to host).
        reasons = sorted({getattr(e, "strerror", None) or str(e) for e in exc.errors.values()}) or [str(exc)]
        return TransportError(f"{url}: cannot connect: {'; '.join(reasons)}")
    if isinstance(exc, paramiko.SSHException | EOFError):
        return TransportError(f"{url}: SSH failed: {exc}")
    if isinstance(exc, OSError):  # TimeoutError and socket.gaierror are OSErrors
        return TransportError(f"{url}: cannot connect: {exc}")
    return exc


# ------------------------------------------------------------------------------------------
# Jumps

@dataclass
class _Entry:
    refs: int = 0
    client: paramiko.SSHClient | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _alive(client: paramiko.SSHClient | None) -> bool:
    transport = client.get_transport() if client is not None else None
    return transport is not None and transport.is_active()


class JumpPool:
    """Shared connections to jump hosts, one per jump path (the tuple of endpoints
    from the first jump to this one), counted by the connections using them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[Endpoint, ...], _Entry] = {}

    def lease(self, path: tuple[Endpoint, ...], *, host_name: str, timeout: float) -> tuple[
            paramiko.SSHClient, Release]:
        """A live connection to ``path[-1]`` (made through ``path[:-1]``) and the function
        that gives it back; the connection closes when the last holder gives it back."""
        with self._lock:
            entry = self._entries.setdefault(path, _Entry())
            entry.refs += 1
        released = threading.Event()

        def release() -> None:
            if released.is_set():
                return
            released.set()
            self._release(path, entry)

        try:
            with entry.lock:
                if not _alive(entry.client):
                    stale, entry.client = entry.client, None
                    if stale is not None:
                        stale.close()
                    entry.client = self._connect(path, host_name=host_name, timeout=timeout)
                client = entry.client
                assert client is not None
        except BaseException:
            release()
            raise
        return client, release

    def _release(self, path: tuple[Endpoint, ...], entry: _Entry) -> None:
        with self._lock:
            entry.refs -= 1
            if entry.refs > 0 or self._entries.get(path) is not entry:
                return
            del self._entries[path]
        with entry.lock:
            client, entry.client = entry.client, None
        if client is not None:
            client.close()

    def _connect(self, path: tuple[Endpoint, ...], *, host_name: str, timeout: float) -> paramiko.SSHClient:
        hop = path[-1]
        if len(path) == 1:
            return login(hop, host_name=host_name, timeout=timeout)
        return through(self, path[:-1], hop, host_name=host_name, timeout=timeout)

    def connections(self) -> int:
        """How many jump connections are open (for tests and benchmarks)."""
        with self._lock:
            return sum(1 for e in self._entries.values() if _alive(e.client))


def through(pool: JumpPool, jumps: tuple[Endpoint, ...], hop: Endpoint, *, host_name: str,
            timeout: float) -> paramiko.SSHClient:
    """Log into ``hop`` through a direct-tcpip channel of the connection to ``jumps[-1]``."""
    jump_client, release = pool.lease(jumps, host_name=host_name, timeout=timeout)
    try:
        transport = jump_client.get_transport()
        if transport is None:
            raise TransportError(f"{jumps[-1].url}: connection lost")
        try:
            channel = transport.open_channel("direct-tcpip", (hop.hostname, hop.port), ("127.0.0.1", 0),
                                             timeout=timeout)
        except paramiko.ChannelException as exc:
            raise TransportError(f"{hop.url}: cannot connect via {jumps[-1].url}: {exc.text} "
                                 f"(the jump host could not open {hop.hostname}:{hop.port})") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"{hop.url}: cannot connect via {jumps[-1].url}: {exc}") from exc
        return login(hop, host_name=host_name, timeout=timeout, sock=channel, release=release)
    except BaseException:
        release()
        raise


#: The process-wide pool: targets behind the same bastion share one connection to it.
JUMPS = JumpPool()


def connect(route: Route, *, host_name: str, timeout: float,
            pool: JumpPool | None = None) -> paramiko.SSHClient:
    """A logged-in client for ``route.target``; through the route's jumps (shared in
    ``pool``, default the process-wide one) when it has any. Raises TransportError
    (the host could not be reached, refused us or has a bad key)."""
    if not route.jumps:
        return login(route.target, host_name=host_name, timeout=timeout)
    return through(pool if pool is not None else JUMPS, route.jumps, route.target,
                   host_name=host_name, timeout=timeout)

