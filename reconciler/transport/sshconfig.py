"""Where an SSH host really is and how to log into it: the spec's host entry merged
with the operator's ``~/.ssh/config``, resolved into a :class:`Route` (the target and
the jump hosts in front of it). Pure: reads local files, opens no connection.

Precedence, per setting, first one that says something wins:

1. the spec's host entry: the user and port written in ``connect``,
   ``identity_file``, ``known_hosts``, ``host_key``, ``via`` / ``proxy_jump``;
2. ``~/.ssh/config`` (``$HOME/.ssh/config``), looked up with the host part of
   ``connect`` as OpenSSH does (``Host`` patterns, first value wins): ``HostName``,
   ``User``, ``Port``, ``IdentityFile`` (several), ``IdentitiesOnly``, ``ProxyJump``
   (one host or a chain), ``UserKnownHostsFile``, ``GlobalKnownHostsFile``,
   ``HostKeyAlias``, ``StrictHostKeyChecking``;
3. defaults: user root, port 22, the ``~/.ssh/id_*`` keys and the agent,
   ``~/.ssh/known_hosts``.

Two settings are never loosened by the config file: ``StrictHostKeyChecking`` can
only make checking stricter than the spec's ``host_key`` (``yes`` turns
``accept-new`` into ``check``; ``no`` changes nothing), and host keys a spec's
``known_hosts`` file lists for a host decide alone (a stale line for the same host
in ``~/.ssh/known_hosts`` is not consulted). ``HostName`` is not an override: it
says where the name in ``connect`` is, as it does for ``ssh NAME``. ``Include`` and
``ProxyCommand`` are not supported (a ``ProxyCommand`` for a host is an error, not
silently bypassed); ``/etc/ssh/ssh_config`` is not read.

Jump hosts: ``via: NAME`` reaches the host through another host entry of the spec,
connected and checked with that entry's own settings (its own ``via`` too);
``proxy_jump`` (a spec URL or a list of them) and the config's ``ProxyJump`` are
checked with the target's ``known_hosts`` and ``host_key``, and each jump's user,
port, key and address come from the config file as for ``ssh -J`` (a jump the config
gives no key is tried with the target's ``identity_file``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    import paramiko

DEFAULT_USER = "root"
DEFAULT_PORT = 22
# The keys OpenSSH tries when no IdentityFile is configured, in its order (DSA left out:
# OpenSSH dropped it and paramiko cannot load it from newer key formats anyway).
DEFAULT_IDENTITIES = ("~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ed25519")
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
USER_CONFIG = "~/.ssh/config"
MAX_JUMPS = 8  # a longer chain is almost certainly a loop through the config file


class SSHSettingsError(ReconcilerError):
    """The spec and the config file together do not say how to reach a host (a bad
    ProxyJump, a loop of jumps, an unreadable config file). Not transient."""


class HostKeyPolicy(StrEnum):
    CHECK = "check"            # unknown and changed keys are refused
    ACCEPT_NEW = "accept-new"  # an unknown key is recorded; a changed key is refused


class HostAccess(Protocol):
    """What a host entry says about reaching it (``reconciler.spec.HostSpec`` is one)."""

    @property
    def connect(self) -> str: ...
    @property
    def identity_file(self) -> str | None: ...
    @property
    def known_hosts(self) -> str | None: ...
    @property
    def host_key(self) -> str: ...
    @property
    def via(self) -> str | None: ...
    @property
    def proxy_jump(self) -> str | list[str] | None: ...


@dataclass(frozen=True)
class Access:
    """A :class:`HostAccess` built from plain arguments (what ``SSHTransport`` takes)."""

    connect: str
    identity_file: str | None = None
    known_hosts: str | None = None
    host_key: str = HostKeyPolicy.CHECK.value
    via: str | None = None
    proxy_jump: str | list[str] | None = None


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to log into, every setting resolved. Hashable: the jump pool
    shares one connection per endpoint (and per path to it)."""

    name: str                       # as written in the spec or ProxyJump: messages, config lookup
    hostname: str                   # where to connect (the config's HostName, else name)
    port: int
    user: str
    identity_files: tuple[str, ...]  # absolute paths, tried in order
    identities_named: bool          # True when the spec or config named them (else the defaults)
    use_agent: bool                 # False with IdentitiesOnly
    spec_known_hosts: str | None    # the spec's file: for a host it lists, it alone decides
    user_known_hosts: tuple[str, ...]
    global_known_hosts: tuple[str, ...]
    host_key: HostKeyPolicy
    host_key_alias: str | None = None
    strict_by_config: bool = False  # the spec said accept-new; StrictHostKeyChecking made it check

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@{self.name}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name host keys are recorded under, as OpenSSH writes it."""
        name = self.host_key_alias or self.hostname
        return name if self.port == DEFAULT_PORT else f"[{name}]:{self.port}"

    @property
    def record_to(self) -> str:
        """Where ``accept-new`` records an unknown key: the spec's file, else the user's."""
        return self.spec_known_hosts or self.user_known_hosts[0]


@dataclass(frozen=True)
class Route:
    """The target and the jumps in front of it, outermost first: ``jumps[0]`` is
    connected directly, each next hop through a direct-tcpip channel of the previous."""

    target: Endpoint
    jumps: tuple[Endpoint, ...] = ()

    @property
    def description(self) -> str:
        if not self.jumps:
            return self.target.url
        return f"{self.target.url} via {', '.join(j.url for j in self.jumps)}"


# ------------------------------------------------------------------------------------------
# Parsing

_JUMP_FORM = re.compile(r"(?:(?P<user>[^@/\s]+)@)?(?P<host>\[[^\]\s]+\]|[^:@/\s]+)(?::(?P<port>\d{1,5}))?")


def parse_ssh_url(url: str) -> tuple[str | None, str, int | None]:
    """``ssh://[user@]host[:port]`` -> (user or None, host, port or None)."""
    parsed = urlparse(url)
    if parsed.scheme != "ssh" or not parsed.hostname:
        raise SSHSettingsError(f"expected ssh://[user@]host[:port], got {url!r}")
    try:
        port = parsed.port
    except ValueError as exc:
        raise SSHSettingsError(f"{url!r}: bad port") from exc
    return parsed.username or None, parsed.hostname, port


def parse_jump(text: str) -> tuple[str | None, str, int | None]:
    """One ProxyJump hop: ``ssh://[user@]host[:port]`` or OpenSSH's ``[user@]host[:port]``."""
    text = text.strip()
    if text.startswith("ssh://"):
        return parse_ssh_url(text)
    match = _JUMP_FORM.fullmatch(text)
    if match is None:
        raise SSHSettingsError(f"bad jump host {text!r}; expected [user@]host[:port] or ssh://user@host:port")
    port = match["port"]
    return match["user"], match["host"].strip("[]"), int(port) if port else None


def jump_list(value: str | Sequence[str] | None) -> list[str]:
    """A spec ``proxy_jump`` or a config ``ProxyJump`` as a list of hops (comma-separated
    chains allowed in both; ``none`` means no jump)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    hops = [hop.strip() for item in items for hop in item.split(",") if hop.strip()]
    return [] if [h.lower() for h in hops] == ["none"] else hops


# ------------------------------------------------------------------------------------------
# The config file

def load_user_config(path: str | None = None) -> paramiko.SSHConfig:
    """``~/.ssh/config`` parsed (empty when there is none)."""
    import paramiko

    file = Path(os.path.expanduser(path or USER_CONFIG))
    try:
        text = file.read_text()
    except FileNotFoundError:
        return paramiko.SSHConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise SSHSettingsError(f"cannot read {file}: {exc}") from exc
    try:
        return paramiko.SSHConfig.from_text(text)
    except Exception as exc:  # ConfigParseError and friends: the operator's file is malformed
        raise SSHSettingsError(f"{file}: {exc}") from exc


def _lookup(config: paramiko.SSHConfig, name: str) -> dict[str, object]:
    try:
        return dict(config.lookup(name))
    except Exception as exc:  # a Match line paramiko cannot evaluate, a bad canonicalisation
        raise SSHSettingsError(f"~/.ssh/config for {name!r}: {exc}") from exc


def _expand(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _words(value: object) -> list[str]:
    return str(value).split() if value else []


def _endpoint(name: str, user: str | None, port: int | None, *, config: paramiko.SSHConfig,
              identity_file: str | None, known_hosts: str | None, host_key: HostKeyPolicy,
              fallback_identity: str | None = None) -> tuple[Endpoint, list[str], object]:
    """The endpoint for ``name`` (spec values given, the rest from the config), with
    the config's ProxyJump hops and ProxyCommand for it. ``fallback_identity`` is
    used when neither ``identity_file`` nor the config names a key."""
    found = _lookup(config, name)
    config_port = found.get("port")
    try:
        resolved_port = port or (int(str(config_port)) if config_port else DEFAULT_PORT)
    except ValueError as exc:
        raise SSHSettingsError(f"~/.ssh/config for {name!r}: bad Port {config_port!r}") from exc
    if identity_file:
        identities, named = [_expand(identity_file)], True
    elif found.get("identityfile"):
        identities, named = [_expand(str(p)) for p in found["identityfile"]], True  # type: ignore[attr-defined]
    elif fallback_identity:
        identities, named = [_expand(fallback_identity)], True
    else:
        identities, named = [_expand(p) for p in DEFAULT_IDENTITIES], False
    strict = str(found.get("stricthostkeychecking", "")).lower()
    policy = HostKeyPolicy.CHECK if strict in ("yes", "ask") else host_key
    endpoint = Endpoint(
        name=name,
        hostname=str(found.get("hostname") or name),
        port=resolved_port,
        user=user or str(found.get("user") or DEFAULT_USER),
        identity_files=tuple(dict.fromkeys(identities)),
        identities_named=named,
        use_agent=str(found.get("identitiesonly", "no")).lower() != "yes",
        spec_known_hosts=_expand(known_hosts) if known_hosts else None,
        user_known_hosts=tuple(_expand(p) for p in _words(found.get("userknownhostsfile"))
                               or DEFAULT_USER_KNOWN_HOSTS),
        global_known_hosts=tuple(_expand(p) for p in _words(found.get("globalknownhostsfile"))
                                 or DEFAULT_GLOBAL_KNOWN_HOSTS),
        host_key=policy,
        host_key_alias=str(found["hostkeyalias"]) if found.get("hostkeyalias") else None,
        strict_by_config=policy is not host_key,
    )
    return endpoint, jump_list(str(found["proxyjump"]) if found.get("proxyjump") else None), \
        found.get("proxycommand")


# ------------------------------------------------------------------------------------------
# Routes

def resolve_route(host_name: str, access: HostAccess, peers: Mapping[str, HostAccess] | None = None,
                  config: paramiko.SSHConfig | None = None) -> Route:
    """How to reach ``host_name``: its endpoint and the jumps in front of it.
    ``peers`` are the spec's host entries (for ``via``); ``config`` defaults to
    ``~/.ssh/config``. Raises SSHSettingsError when they do not say."""
    config = config if config is not None else load_user_config()
    return _resolve(host_name, access, peers or {}, config, ())


def _resolve(host_name: str, access: HostAccess, peers: Mapping[str, HostAccess], config: paramiko.SSHConfig,
             trail: tuple[str, ...]) -> Route:
    if host_name in trail:
        raise SSHSettingsError(f"host {host_name}: `via` loops: {' -> '.join([*trail, host_name])}")
    if access.connect == "local":
        raise SSHSettingsError(f"host {trail[-1] if trail else host_name}: `via: {host_name}` names a "
                               "local host; a jump host must be reached over SSH")
    user, name, port = parse_ssh_url(access.connect)
    policy = HostKeyPolicy(access.host_key)
    target, config_jumps, proxy_command = _endpoint(
        name, user, port, config=config, identity_file=access.identity_file,
        known_hosts=access.known_hosts, host_key=policy)
    spec_jumps = jump_list(access.proxy_jump)
    if access.via:
        peer = peers.get(access.via)
        if peer is None:
            raise SSHSettingsError(f"host {host_name}: `via: {access.via}` names no host of the spec")
        via = _resolve(access.via, peer, peers, config, (*trail, host_name))
        jumps = (*via.jumps, via.target)
    elif spec_jumps:
        jumps = _jump_chain(spec_jumps, config, access, policy, (name,))
    elif config_jumps:
        jumps = _jump_chain(config_jumps, config, access, policy, (name,))
    elif proxy_command:
        raise SSHSettingsError(f"host {host_name}: ~/.ssh/config gives {name!r} a ProxyCommand, which "
                               "reconciler does not run; use ProxyJump, or `via:` / `proxy_jump:` "
                               "in the spec")
    else:
        jumps = ()
    if len(jumps) > MAX_JUMPS:
        raise SSHSettingsError(f"host {host_name}: more than {MAX_JUMPS} jump hosts "
                               f"({', '.join(j.name for j in jumps)}); is ProxyJump looping?")
    return Route(target, tuple(jumps))


def _jump_chain(hops: Sequence[str], config: paramiko.SSHConfig, access: HostAccess,
                policy: HostKeyPolicy, trail: tuple[str, ...]) -> tuple[Endpoint, ...]:
    """Endpoints for a ProxyJump chain. As with ``ssh -J a,b``: the first hop's own
    ProxyJump from the config applies (it is reached as ``ssh a`` would reach it), the
    later hops are reached through the previous one whatever their config says.
    A jump's keys are the config's for it, else the target's ``identity_file``, else
    the defaults; its host key is checked with the target's ``known_hosts`` and
    ``host_key``."""
    out: list[Endpoint] = []
    for i, hop in enumerate(hops):
        user, name, port = parse_jump(hop)
        if name in trail or len(trail) > MAX_JUMPS:
            raise SSHSettingsError(f"ProxyJump loops: {' -> '.join([*trail, name])}")
        endpoint, own_jumps, _command = _endpoint(name, user, port, config=config, identity_file=None,
                                                  known_hosts=access.known_hosts, host_key=policy,
                                                  fallback_identity=access.identity_file)
        if i == 0 and own_jumps:
            out.extend(_jump_chain(own_jumps, config, access, policy, (*trail, name)))
        out.append(endpoint)
    return tuple(out)

