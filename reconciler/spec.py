"""Loading and validating a spec: one YAML file or a directory of them, merged.

The top-level model is assembled from the registered providers (one key per
kind), so the core knows no resource kind. Every mistake is collected as a
Diagnostic with its file, line and column; nothing here raises on bad input.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from reconciler.diagnostics import Diagnostic, Diagnostics, SourcePos, format_path
from reconciler.errors import ReconcilerError
from reconciler.fleet import Fleet, FleetError, HostFacts, has_fleet_refs
from reconciler.interpolate import (
    MAX_STRING_CHARS,
    MAX_TOTAL_CHARS,
    NAME,
    SizeBudget,
    parse_published,
    references,
    resolve_variables,
    substitute_vars,
    substituted_length,
    walk_strings,
)
from reconciler.provider import Issue, Provider, Resource, load_providers, provider_names
from reconciler.rollout import RolloutSpec
from reconciler.specfiles import MAX_SPEC_FILE_BYTES, SpecFileError, decode_text, find_spec_root, is_inside
from reconciler.transport.sshconfig import SSHSettingsError, jump_list, parse_jump
from reconciler.yamlpos import Path as YPath
from reconciler.yamlpos import load_yaml

SPEC_SUFFIXES = (".yaml", ".yml")
ENV_SPEC = "RECONCILER_SPEC"
DEFAULT_SPEC = "specs"

VarValue = Union[str, int, bool, float]  # noqa: UP007 - pydantic needs a runtime union here


class HostSpec(BaseModel):
    """How to reach one host, and the variables its resources may use."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    connect: str = Field(description='"local", or "ssh://user@host:port".')
    vars: dict[str, VarValue] = Field(default_factory=dict, description="Variables for ${NAME} on this host.")
    groups: list[str] = Field(
        default_factory=list, description="Groups this host is in (besides those whose hosts: select it).")
    address: str | None = Field(
        default=None, description="Where other hosts reach this one (${host:NAME/address}); default: the "
                                  "host of connect.")
    identity_file: str | None = Field(
        default=None, description="Private key for SSH (default: agent and ~/.ssh).")
    known_hosts: str | None = Field(
        default=None, description="Extra known_hosts file to check host keys against.")
    host_key: Literal["check", "accept-new"] = Field(
        default="check",
        description="accept-new records an unknown host's key; a changed key is always refused.")
    via: str | None = Field(
        default=None, description="Another host of this spec to reach this one through (a bastion), "
                                  "connected and checked with that host's own settings.")
    proxy_jump: str | list[str] | None = Field(
        default=None, description="Jump host(s), ssh://user@host:port or user@host:port; a list (or "
                                  "commas) is a chain, outermost first. Checked with this host's "
                                  "known_hosts and host_key.")
    become: Literal["sudo"] | None = Field(
        default=None, description="sudo: log in as the connect user and become root with sudo "
                                  "(needed when root cannot log in over SSH).")
    become_password_file: str | None = Field(
        default=None, description="File on this machine holding the sudo password (readable by its "
                                  "owner only); without it sudo must allow NOPASSWD.")

    @field_validator("become_password_file")
    @classmethod
    def _password_file_private(cls, value: str | None) -> str | None:
        """The password file must exist and be readable by its owner only (root or the
        user running reconcile): a group- or world-readable password is a leaked one."""
        if value is None:
            return value
        path = Path(value).expanduser()
        try:
            st = path.stat()
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
        if not path.is_file():
            raise ValueError(f"{value} is not a regular file")
        if st.st_mode & 0o077:
            raise ValueError(f"{value} is readable or writable by group or others (mode "
                             f"{st.st_mode & 0o777:04o}); chmod 600 it")
        if st.st_uid not in (0, os.getuid()):
            raise ValueError(f"{value} must be owned by root or by the user running reconcile")
        return value

    @field_validator("groups")
    @classmethod
    def _group_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not NAME.match(name):
                raise ValueError(f"group name {name!r}: letters, digits, '_', '-' and '.', starting with a "
                                 "letter or '_'")
        return value

    @property
    def reach_address(self) -> str | None:
        """``address``, or the host of an ``ssh://`` connect URL (None for local)."""
        if self.address:
            return self.address
        match = re.fullmatch(r"ssh://(?:[^@/\s]+@)?([^:/\s]+)(?::\d+)?/?", self.connect)
        return match.group(1) if match else None

    @field_validator("connect")
    @classmethod
    def _connect_form(cls, value: str) -> str:
        if value == "local":
            return value
        match = re.fullmatch(r"ssh://([^@/\s]+@)?[^:/\s]+(?::(\d{1,5}))?/?", value)
        if not match:
            raise ValueError('expected "local" or "ssh://user@host[:port]"')
        if match.group(2) is not None and not 1 <= int(match.group(2)) <= 65535:
            raise ValueError(f"port {match.group(2)} is out of range 1-65535")
        return value

    @field_validator("proxy_jump")
    @classmethod
    def _jump_form(cls, value: str | list[str] | None) -> str | list[str] | None:
        hops = jump_list(value)
        if value is not None and not hops:
            raise ValueError("expected ssh://user@host[:port] (or a list of them)")
        for hop in hops:
            try:
                _user, _host, port = parse_jump(hop)
            except SSHSettingsError as exc:
                raise ValueError(str(exc)) from None
            if port is not None and not 1 <= port <= 65535:
                raise ValueError(f"port {port} in jump host {hop!r} is out of range 1-65535")
        return value


class GroupSpec(BaseModel):
    """A group of hosts: who is in it, and variables its hosts share (see reconciler.fleet)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    hosts: list[str] = Field(
        default_factory=list, description="Members: host names, other groups, or patterns such as "
                                          "backend-*; !NAME takes hosts out. Hosts may also name their "
                                          "groups under hosts.NAME.groups.")
    vars: dict[str, VarValue] = Field(
        default_factory=dict, description="Variables of the group's hosts: a host's own vars win; two "
                                          "groups of one host must not disagree.")


def _check_host_access(spec: LoadedSpec, diags: Diagnostics) -> None:
    """How hosts are reached: ``via`` names another SSH host and does not loop, at most
    one of ``via`` / ``proxy_jump``, and the spec's identity files exist and are readable
    here (a missing key would otherwise surface only as a failed login)."""
    names = ", ".join(sorted(spec.hosts))
    for name, host in spec.hosts.items():
        def at(key: str, _name: str = name) -> tuple[str, SourcePos | None]:
            return f"hosts.{_name}.{key}", _lookup_pos(spec.positions, ("hosts", _name, key),
                                                       SourcePos(spec.path, 1, 1))

        if host.connect == "local" and (host.via or host.proxy_jump):
            fp, pos = at("via" if host.via else "proxy_jump")
            diags.error("a local host is not reached over SSH, so it has no jump host",
                        field_path=fp, pos=pos)
        if host.via and host.proxy_jump:
            fp, pos = at("proxy_jump")
            diags.error("give either via or proxy_jump, not both", field_path=fp, pos=pos)
        if host.via:
            fp, pos = at("via")
            trail = [name]
            current: HostSpec | None = host
            while current is not None and current.via:
                if current.via not in spec.hosts:
                    diags.error(f"unknown host {current.via!r}; hosts are {names}", field_path=fp, pos=pos)
                    break
                if current.via in trail:
                    diags.error(f"via loops: {' -> '.join([*trail, current.via])}", field_path=fp, pos=pos)
                    break
                trail.append(current.via)
                current = spec.hosts[current.via]
                if current.connect == "local":
                    diags.error(f"{trail[-1]!r} is a local host; a jump host must be reached over SSH",
                                field_path=fp, pos=pos)
                    break
        if host.host_key == "accept-new" and host.known_hosts and spec.root:
            # accept-new appends to this file: a commit must not make the controller write
            # anywhere outside the repository it came from.
            target = Path(os.path.expanduser(host.known_hosts))
            if not is_inside(Path(spec.root), target.resolve()):
                fp, pos = at("known_hosts")
                diags.error(f"with host_key: accept-new the reconciler records new host keys in "
                            f"{host.known_hosts}, so it must be inside the spec's repository ({spec.root})",
                            field_path=fp, pos=pos,
                            hint="keep known_hosts in the repository, or use host_key: check")
        if host.identity_file:
            path = Path(os.path.expanduser(host.identity_file))
            problem = ("does not exist" if not path.exists() else "is not a file" if not path.is_file()
                       else "is not readable by this user" if not os.access(path, os.R_OK) else "")
            if problem:
                fp, pos = at("identity_file")
                diags.error(f"identity file {host.identity_file} {problem}", field_path=fp, pos=pos,
                            hint="the private key reconciler logs in with, on this machine")


@dataclass(frozen=True)
class ResourceEntry:
    """One resource as the spec declares it, with where it was declared."""

    kind: str
    id: str
    index: int  # position in the merged list (-1 for singletons)
    resource: Resource
    pos: SourcePos | None
    # Position in the list of the file that declares it: what a user counts in that file.
    file_index: int | None = None
    # Not declared: in effect through Provider.implied_by. Another stack may own it.
    implied: bool = False
    # The hosts it applies to (its ``hosts:`` selectors resolved); None: every host.
    targets: frozenset[str] | None = None

    @property
    def address(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def field_path(self) -> str:
        if self.index < 0:
            return self.kind
        return f"{self.kind}[{self.index if self.file_index is None else self.file_index}]"


@dataclass
class LoadedSpec:
    path: str
    digest: str
    hosts: dict[str, HostSpec]
    vars: dict[str, str]
    entries: list[ResourceEntry]
    providers: dict[str, Provider[Any]]
    positions: dict[YPath, SourcePos] = field(default_factory=dict)
    # Warnings found while loading (errors stop the load); plans carry them in their JSON.
    warnings: list[Diagnostic] = field(default_factory=list)
    # Whether ``providers`` holds only the kinds this spec names (load_spec chose them,
    # see load_providers): the engine then also loads those a host's inventory holds,
    # to prune what left the spec. False when the caller passed the providers.
    partial_providers: bool = False
    # The stack this spec is on its hosts (``stack:``, default: see default_stack_name),
    # and the addresses it takes over from other stacks (``adopt:``).
    stack: str = "default"
    adopt: frozenset[str] = frozenset()
    # Where files named in the spec must stay (see reconciler.specfiles).
    root: str = ""
    # Host groups (``groups:``) and the rollout (``rollout:``); see reconciler.fleet, .rollout.
    groups: dict[str, GroupSpec] = field(default_factory=dict)
    rollout: RolloutSpec | None = None
    fleet: Fleet = field(default_factory=lambda: Fleet({}))
    _host_vars: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def group_vars(self, host: str) -> dict[str, str]:
        """The variables the groups of ``host`` give it (in group order; a conflict
        between two groups is a spec error, so the order does not decide anything)."""
        merged: dict[str, str] = {}
        for group in self.fleet.groups_of.get(host, ()):
            spec = self.groups.get(group)
            if spec is not None:
                for k, v in spec.vars.items():
                    merged.setdefault(k, _var_text(v))
        return merged

    def raw_host_vars(self, host: str) -> dict[str, str]:
        """A host's variables as written: ``host`` (its name), top-level vars, its groups'
        vars, its own vars; a later source wins (top-level vars cannot be overridden)."""
        merged = {"host": host, **self.vars, **self.group_vars(host)}
        merged.update({k: _var_text(v) for k, v in self.hosts[host].vars.items()})
        return merged

    def host_vars(self, host: str) -> dict[str, str]:
        """A host's variables with references between them, and ``${host:...}`` fleet
        references inside them, expanded."""
        if host not in self._host_vars:
            self._host_vars[host] = resolve_variables(self.raw_host_vars(host))[0]
        return self._host_vars[host]

    def applies_to(self, entry: ResourceEntry, host: str) -> bool:
        return entry.targets is None or host in entry.targets

    def entries_for(self, host: str) -> list[ResourceEntry]:
        return [e for e in self.entries if self.applies_to(e, host)]

    def resource_for_host(self, entry: ResourceEntry, host: str) -> Resource:
        """The resource with ``${var}`` substituted for one host and its fleet
        references resolved (``${each:...}`` list items repeated per host; see
        reconciler.fleet). Secret and published references stay."""
        data = entry.resource.model_dump(mode="python")
        substituted = self.fleet.expand(substitute_vars(data, self.host_vars(host)))
        if substituted == data:
            return entry.resource
        out = type(entry.resource).model_validate(substituted)
        out.copy_private_from(entry.resource)
        return out

    @cached_property
    def upstreams(self) -> dict[str, dict[str, tuple[tuple[str, str], ...]]]:
        """Cross-host dependencies: host -> address of one of its resources -> the
        (host, address) pairs on *other* hosts it must wait for (``depends_on:
        [SELECTOR/KIND:ID]``). A selector that also matches the host itself makes an
        ordinary dependency on its own resource there."""
        out: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {}
        secret_kinds = [k for k, p in self.providers.items() if p.provides_secrets]
        for entry in self.entries:
            cross = [split_dependency(d) for d in entry.resource.depends_on]
            cross = [(sel, addr) for sel, addr in cross if sel is not None]
            # ${secret:HOST/NAME}: the secret generated on that host.
            for _path, text in walk_strings(entry.resource.model_dump(mode="python")):
                if "${secret:" not in text:
                    continue
                for ref in references(text):
                    if ref.kind == "secret" and "/" in ref.name:
                        selector, _, secret = ref.name.partition("/")
                        cross.extend((selector, f"{k}:{secret}") for k in secret_kinds)
            if not cross:
                continue
            for host in self.hosts:
                if not self.applies_to(entry, host):
                    continue
                pairs: list[tuple[str, str]] = []
                for sel, addr in cross:
                    assert sel is not None
                    try:
                        selected = self.fleet.select(sel)
                    except FleetError:
                        continue  # reported when loading
                    for other in selected:
                        if other != host and self.entry_for(addr, other) is not None:
                            pairs.append((other, addr))
                if pairs:
                    out.setdefault(host, {})[entry.address] = tuple(dict.fromkeys(pairs))
        return out

    def local_dependencies(self, entry: ResourceEntry, host: str) -> list[str]:
        """``depends_on`` as addresses on ``host`` itself: plain ``KIND:ID`` ones, and
        cross-host ones whose selector matches ``host`` too."""
        out: list[str] = []
        for dep in entry.resource.depends_on:
            sel, addr = split_dependency(dep)
            if sel is None:
                out.append(dep)
                continue
            try:
                if host in self.fleet.select(sel):
                    out.append(addr)
            except FleetError:
                continue
        return out

    @cached_property
    def by_address(self) -> dict[str, ResourceEntry]:
        """Each address's entry (the last one when several apply to different hosts: use
        ``entry_for`` to ask about one host)."""
        return {e.address: e for e in self.entries}

    @cached_property
    def entries_by_address(self) -> dict[str, list[ResourceEntry]]:
        out: dict[str, list[ResourceEntry]] = {}
        for e in self.entries:
            out.setdefault(e.address, []).append(e)
        return out

    def entry_for(self, address: str, host: str) -> ResourceEntry | None:
        """The entry with ``address`` that applies to ``host`` (an address may be declared
        more than once, for different hosts)."""
        return next((e for e in self.entries_by_address.get(address, ()) if self.applies_to(e, host)), None)

    def for_pull(self, host: str) -> LoadedSpec:
        """This spec as the controller running *on* ``host`` sees it (pull mode): only
        that host, reached locally (``connect: local``), every resource of the spec
        still here (those for other hosts apply to none). Its facts, groups and
        variables are kept, so fleet references resolve as they do in a push run;
        other hosts are not contacted (cross-host ``depends_on`` is not waited for,
        ``${published:...}`` values of other hosts are known after apply)."""
        if host not in self.hosts:
            raise ReconcilerError(f"host {host!r} is not in this spec; its hosts are "
                                  f"{', '.join(self.fleet.ordered(self.hosts))}")
        local = self.hosts[host].model_copy(update={
            "connect": "local", "via": None, "proxy_jump": None, "identity_file": None, "known_hosts": None,
            "become": None, "become_password_file": None,
            "address": self.hosts[host].reach_address})
        return LoadedSpec(self.path, self.digest, {host: local}, self.vars, self.entries, self.providers,
                          self.positions, self.warnings, root=self.root,
                          partial_providers=self.partial_providers, stack=self.stack, adopt=self.adopt,
                          groups=self.groups, rollout=self.rollout, fleet=self.fleet,
                          _host_vars={host: self.host_vars(host)})


def split_dependency(dep: str) -> tuple[str | None, str]:
    """``SELECTOR/KIND:ID`` -> (selector, ``KIND:ID``); a plain ``KIND:ID`` -> (None, it).
    A kind has no '/', so a '/' before the first ':' ends a selector."""
    colon = dep.find(":")
    slash = dep.find("/")
    if 0 < slash < colon:
        return dep[:slash], dep[slash + 1:]
    return None, dep


def _var_text(value: VarValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------------------
# Building the top-level model from the providers

def spec_model(providers: Mapping[str, Provider[Any]]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "hosts": (dict[str, HostSpec], Field(description="Host name -> how to reach it.")),
        "vars": (dict[str, VarValue], Field(default_factory=dict, description="Variables for every host.")),
        "groups": (dict[str, GroupSpec], Field(default_factory=dict, description=(
            "Host groups: members (names, groups, patterns) and their variables (docs/fleet.md)."))),
        "rollout": (RolloutSpec | None, Field(default=None, description=(
            "Rolling applies: hosts per batch, failure threshold, health checks (docs/fleet.md)."))),
        "stack": (str | None, Field(default=None, description=(
            "This spec's stack name: several specs can manage one host, each owning its own objects. "
            "Default: the spec directory's name (a single-file spec: the file name without .yaml)."))),
        "adopt": (list[str], Field(default_factory=list, description=(
            "Addresses (kind:id) this stack takes over from the stack that owns them on a host."))),
    }
    for kind, provider in providers.items():
        if provider.singleton:
            # One object for the hosts it applies to, or (a fleet) a list of them, each for
            # other hosts: one per host in effect.
            fields[kind] = (provider.model | list[provider.model] | None,  # type: ignore[name-defined]
                            Field(default=None, description=provider.description))
        else:
            fields[kind] = (list[provider.model], Field(  # type: ignore[name-defined]
                default_factory=list, description=provider.description))
    # Built when first used: load_spec validates only the frame (``_frame_model``) and
    # each resource on its own, and reads this one's fields to word a diagnostic.
    model: type[BaseModel] = create_model(
        "Spec", __config__=ConfigDict(extra="forbid", strict=True, defer_build=True), **fields)
    return model


@functools.cache
def _frame_model() -> type[BaseModel]:
    """The spec without its kinds (hosts, vars, stack, adopt): what load_spec validates
    as a whole. Made once per process."""
    return spec_model({})


def _providers_for(documents: list[tuple[str, Any, dict[YPath, SourcePos]]]) -> dict[str, Provider[Any]]:
    """The providers a spec needs: those of the kinds its files name at the top level
    (``load_providers(kinds)``), or every one when a top-level key names no provider's
    entry point or the providers loaded do not claim it. So a mistyped key's
    diagnostic lists every kind, as it would with all of them loaded."""
    keys = {key for _file, data, _pos in documents if isinstance(data, dict) for key in data}
    keys -= set(_frame_model().model_fields)
    if keys <= provider_names():
        providers = load_providers(keys)
        if keys <= set(providers):
            return providers
    return load_providers()


def _with_prerequisite_kinds(providers: dict[str, Provider[Any]],
                             entries: list[ResourceEntry]) -> dict[str, Provider[Any]]:
    """The spec's providers plus those of kinds its resources name as prerequisites
    (``packages:nginx`` for a site) that the spec itself does not use: the engine needs
    them to observe the prerequisite, so that a missing package is a plan error naming
    it, not a failure halfway through apply."""
    wanted: set[str] = set()
    for e in entries:
        try:
            choices = providers[e.kind].prerequisites(e.resource)
        except Exception:  # odd input is reported by validation, not here
            continue
        for choice in choices:
            wanted.update(a.partition(":")[0] for a in ((choice,) if isinstance(choice, str) else choice))
    missing = (wanted & provider_names()) - set(providers)
    if not missing:
        return providers
    merged = {**providers, **load_providers(missing)}
    return dict(sorted(merged.items(), key=lambda kv: (kv[1].order, kv[0])))


def json_schema(providers: Mapping[str, Provider[Any]] | None = None) -> dict[str, Any]:
    schema = spec_model(providers or load_providers()).model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "reconciler spec"
    return schema


# ---------------------------------------------------------------------------------------
# Reading files

def resolve_spec_path(path: str | None) -> str:
    return path or os.environ.get(ENV_SPEC) or DEFAULT_SPEC


MAX_SPEC_FILES = 10_000
"""Most spec files one spec directory may hold."""
MAX_SPEC_BYTES = 64 << 20
"""Most bytes all the files of one spec may hold together (64 MiB)."""


def _spec_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


FileIndex = dict[tuple[str, int], int]
"""(kind, index in the merged list) -> index in the list of the file that declares it."""


def _merge(documents: list[tuple[str, Any, dict[YPath, SourcePos]]], providers: Mapping[str, Provider[Any]],
           diags: Diagnostics) -> tuple[dict[str, Any], dict[YPath, SourcePos], FileIndex]:
    merged: dict[str, Any] = {}
    positions: dict[YPath, SourcePos] = {}
    file_index: FileIndex = {}
    for file, data, pos in documents:
        if data is None:
            continue
        if not isinstance(data, dict):
            diags.error("a spec file must be a mapping of top-level keys (hosts, files, ...)",
                        pos=pos.get((), SourcePos(file, 1, 1)))
            continue
        for key, value in data.items():
            kpos = pos.get((key,))
            singleton = key in providers and providers[key].singleton
            if singleton and key in merged and isinstance(value, dict | list):
                _merge_singleton(key, merged, positions, file_index, value, pos)
                continue
            if key not in merged:
                merged[key] = value
                positions.update({p: v for p, v in pos.items() if p[:1] == (key,)})
                if isinstance(value, list):
                    file_index.update({(key, i): i for i in range(len(value))})
            elif isinstance(merged[key], list) and isinstance(value, list) and not singleton:
                offset = len(merged[key])
                merged[key] = merged[key] + value
                file_index.update({(key, i + offset): i for i in range(len(value))})
                for p, v in pos.items():
                    if p[:1] == (key,) and len(p) >= 2 and isinstance(p[1], int):
                        positions[(key, p[1] + offset, *p[2:])] = v
            elif isinstance(merged[key], dict) and isinstance(value, dict) and key in ("hosts", "vars",
                                                                                          "groups"):
                for name, sub in value.items():
                    if name in merged[key]:
                        what = {"hosts": "host", "vars": "variable", "groups": "group"}[key]
                        diags.error(f"{what} {name!r} is defined twice "
                                    f"(also at {positions.get((key, name))})", field_path=f"{key}.{name}",
                                    pos=pos.get((key, name)))
                        continue
                    merged[key][name] = sub
                    positions.update({p: v for p, v in pos.items() if p[:2] == (key, name)})
            else:
                diags.error(f"{key!r} is defined twice (also at {positions.get((key,))})",
                            field_path=key, pos=kpos)
    return merged, positions, file_index


def _merge_singleton(key: str, merged: dict[str, Any], positions: dict[YPath, SourcePos],
                     file_index: FileIndex, value: Any, pos: Mapping[YPath, SourcePos]) -> None:
    """A singleton kind written in more than one file (one object per file, each for
    its own hosts, or lists of them) becomes a list; the overlap check says when two
    apply to one host."""
    if isinstance(merged[key], dict):
        for p in [p for p in positions if p[:1] == (key,)]:
            positions[(key, 0, *p[1:])] = positions.pop(p)
        merged[key] = [merged[key]]
        file_index[(key, 0)] = 0
    if not isinstance(merged[key], list):
        return  # a scalar: reported as not a mapping when validated
    offset = len(merged[key])
    items = value if isinstance(value, list) else [value]
    merged[key] = merged[key] + items
    for i in range(len(items)):
        file_index[(key, offset + i)] = i if isinstance(value, list) else 0
    for p, v in pos.items():
        if p[:1] != (key,):
            continue
        if isinstance(value, list):
            if len(p) >= 2 and isinstance(p[1], int):
                positions[(key, p[1] + offset, *p[2:])] = v
        else:
            positions[(key, offset, *p[1:])] = v


def _shown_path(loc: tuple[str | int, ...], file_index: FileIndex) -> str:
    """A field path as the user counts it: list indices are per file, not per merged spec."""
    if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
        loc = (loc[0], file_index.get((loc[0], loc[1]), loc[1]), *loc[2:])
    return format_path(loc)


# ---------------------------------------------------------------------------------------
# Validation errors -> diagnostics

def _lookup_pos(positions: Mapping[YPath, SourcePos], loc: Iterable[str | int],
                fallback: SourcePos) -> SourcePos:
    path = tuple(loc)
    while path:
        if path in positions:
            return positions[path]
        path = path[:-1]
    return positions.get((), fallback)


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str] | None:
    """The field names a mapping at ``loc`` accepts, to suggest them for an unknown key."""
    current: Any = model
    for part in loc:
        while True:
            origin = get_origin(current)
            if origin in (list, dict):
                current = get_args(current)[-1]
                if origin is dict:
                    break
                continue
            if origin is Union or str(origin) == "types.UnionType":
                models = [a for a in get_args(current) if isinstance(a, type) and issubclass(a, BaseModel)]
                current = models[0] if models else None
                continue
            break
        if isinstance(part, int):
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part)
            if info is None:
                return None
            current = info.annotation
        elif get_origin(current) is dict:
            continue
        else:
            return None
    while get_origin(current) in (list, Union) or str(get_origin(current)) == "types.UnionType":
        args = [a for a in get_args(current) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not args:
            break
        current = args[0]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


_TYPE_NAMES = {"string_type": "a string", "int_type": "an integer", "bool_type": "true or false",
               "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
               "float_type": "a number", "model_attributes_type": "a mapping"}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        if len(value) > 60:
            return f"string {value[:40]!r}... ({len(value):,} characters)"
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing (null)"
    return type(value).__name__


def _message(err: Any, model: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    etype = err["type"]
    if etype == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        suffix = f"; expected one of {', '.join(known)}" if known else ""
        return f"unknown field{suffix}"
    if etype == "missing":
        return "required field missing"
    if etype == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        expected = expected.replace("'", "").replace(" or ", ", ")
        return f"expected one of {expected}, got {_describe(err.get('input'))}"
    if etype in _TYPE_NAMES:
        return f"expected {_TYPE_NAMES[etype]}, got {_describe(err.get('input'))}"
    if etype == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if etype == "assertion_error":
        return str(err["msg"]).removeprefix("Assertion failed, ")
    return str(err["msg"])


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # Pydantic adds union-member and function tags to loc; they mean nothing to a user.
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        out.append(part)
    return tuple(out)


# ---------------------------------------------------------------------------------------
# The entry point

def load_spec(path: str | None = None, providers: Mapping[str, Provider[Any]] | None = None, *,
              default_stack: str | None = None) -> tuple[LoadedSpec | None, Diagnostics]:
    """Read, merge and validate a spec. Returns (spec, diagnostics); spec is None on errors.
    ``default_stack``: the stack name when the spec sets none (default: from its path,
    see default_stack_name; the controller passes one that does not change with the
    revision's checkout directory).

    Bounded for input from whoever can commit: spec files must resolve inside the spec
    root (``reconciler.specfiles``; a symlink out of it is refused unread), each at most
    ``MAX_SPEC_FILE_BYTES``, and YAML nesting, aliases, variable expansion and the
    number of diagnostics are all capped."""
    given = dict(providers or {})
    diags = Diagnostics()
    root = Path(resolve_spec_path(path))
    if not root.exists():
        diags.error(f"spec path {str(root)!r} does not exist",
                    hint=f"pass a spec file or directory, or set {ENV_SPEC}")
        return None, diags
    spec_root = find_spec_root(root)
    if not is_inside(spec_root, root):
        diags.error(f"spec path {str(root)!r} leads out of its repository ({spec_root}) through a symbolic "
                    "link; it is not read")
        return None, diags
    files = _spec_files(root)
    if not files:
        diags.error(f"no *.yaml files in {str(root)!r}")
        return None, diags
    if len(files) > MAX_SPEC_FILES:
        diags.error(f"{len(files):,} spec files in {str(root)!r}; at most {MAX_SPEC_FILES:,} are read")
        return None, diags

    digest = hashlib.sha256()
    documents: list[tuple[str, Any, dict[YPath, SourcePos]]] = []
    broken: set[SourcePos] = set()
    total_bytes = 0
    for f in files:
        display = _display(f)
        raw = _read_spec_file(f, display, spec_root, diags, MAX_SPEC_BYTES - total_bytes)
        if raw is None:
            continue
        total_bytes += len(raw)
        try:
            text = decode_text(raw, "the file")
        except SpecFileError as exc:
            diags.error(f"cannot read: {exc}", pos=SourcePos(display, exc.line or 1, exc.column or 1))
            continue
        # Keyed by the path inside the spec, not as shown from the current directory:
        # a plan saved in one directory must still match when applied from another.
        inside = f.relative_to(root).as_posix() if root.is_dir() else f.name
        digest.update(inside.encode() + b"\0" + raw + b"\0")
        loaded = load_yaml(text, display)
        diags.extend(loaded.diagnostics)
        broken.update(loaded.positions[p] for p in loaded.broken if p in loaded.positions)
        if loaded.data is not None:
            documents.append((display, loaded.data, loaded.positions))
    # Chosen once the files are read: only the kinds they name are loaded.
    providers = given or _providers_for(documents)
    merged, positions, file_index = _merge(documents, providers, diags)
    fallback = SourcePos(_display(files[0]), 1, 1)

    def report(err: Any, full: tuple[str | int, ...], shown: str) -> None:
        pos = _lookup_pos(positions, full, fallback)
        if pos in broken:
            return  # a value YAML could not construct, reported as such already
        diags.error(_message(err, model, full), field_path=shown, pos=pos)

    # Validate the frame (hosts, vars, unknown keys) and then each resource on its own,
    # so one bad resource does not hide the others' mistakes or the semantic checks.
    model = spec_model(providers)
    frame = _frame_model()
    yaml_broken = len(documents) < len(files)
    frame_input = {k: v for k, v in merged.items() if k not in providers}
    hosts: dict[str, HostSpec] = {}
    global_vars: dict[str, str] = {}
    stack: str | None = None
    adopt: list[str] = []
    groups: dict[str, GroupSpec] = {}
    rollout: RolloutSpec | None = None
    try:
        validated = frame.model_validate(frame_input)
        hosts = validated.hosts  # type: ignore[attr-defined]
        global_vars = {k: _var_text(v) for k, v in validated.vars.items()}  # type: ignore[attr-defined]
        stack, adopt = validated.stack, list(validated.adopt)  # type: ignore[attr-defined]
        groups, rollout = validated.groups, validated.rollout  # type: ignore[attr-defined]
    except ValidationError as exc:
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            if err["type"] == "missing" and yaml_broken:
                continue  # the key is probably in the file that failed to parse
            report(err, loc, format_path(loc))
    # Relative key and known_hosts paths are relative to the file that names them, as a
    # repository's authors expect (the controller runs from /, the CLI from anywhere).
    for name, host in list(hosts.items()):
        update: dict[str, str] = {}
        for key in ("known_hosts", "identity_file", "become_password_file"):
            value = getattr(host, key, None)
            if isinstance(value, str) and value and not os.path.isabs(os.path.expanduser(value)):
                named_in = _lookup_pos(positions, ("hosts", name, key), fallback).file
                update[key] = os.path.join(os.path.dirname(os.path.abspath(named_in)), value)
        if update:
            hosts[name] = host.model_copy(update=update)
    if "hosts" in merged and not hosts and not diags.has_errors():
        diags.error("at least one host is required", field_path="hosts",
                    pos=_lookup_pos(positions, ("hosts",), fallback))

    for name in hosts:
        for var in hosts[name].vars:
            if var in global_vars:
                diags.error(f"variable {var!r} is also a top-level var; top-level vars are the same on every "
                            "host, so a host cannot override them", field_path=f"hosts.{name}.vars.{var}",
                            pos=_lookup_pos(positions, ("hosts", name, "vars", var), fallback))
    for name, group in groups.items():
        for var in group.vars:
            if var in global_vars:
                diags.error(f"variable {var!r} is also a top-level var; top-level vars are the same on every "
                            "host, so a group cannot override them", field_path=f"groups.{name}.vars.{var}",
                            pos=_lookup_pos(positions, ("groups", name, "vars", var), fallback))
    fleet_draft = Fleet({n: HostFacts(n, h.reach_address, tuple(h.groups)) for n, h in hosts.items()},
                        {n: g.hosts for n, g in groups.items()})
    _check_groups(fleet_draft, groups, hosts, positions, fallback, diags)
    group_vars = _group_vars(fleet_draft, groups, hosts, positions, fallback, diags)

    # Variables may refer to each other; a cycle or a runaway expansion is reported where
    # the variable is defined. Top-level ones first: they are substituted before validation.
    global_vars, problems = resolve_variables(global_vars)
    for var, why in problems.items():
        diags.error(f"variable {var!r}: {why}", field_path=f"vars.{var}",
                    pos=_lookup_pos(positions, ("vars", var), fallback))
    host_vars: dict[str, dict[str, str]] = {}
    for name, host in hosts.items():
        raw_vars = {"host": name, **global_vars, **group_vars.get(name, {}),
                    **{k: _var_text(v) for k, v in host.vars.items()}}
        host_vars[name], problems = resolve_variables(raw_vars)
        for var, why in problems.items():
            if var in host.vars:
                diags.error(f"variable {var!r}: {why}", field_path=f"hosts.{name}.vars.{var}",
                            pos=_lookup_pos(positions, ("hosts", name, "vars", var), fallback))
    fleet = Fleet({n: HostFacts(n, h.reach_address, tuple(h.groups), host_vars[n]) for n, h in hosts.items()},
                  {n: g.hosts for n, g in groups.items()})
    host_vars = _resolve_fleet_vars(fleet, hosts, groups, host_vars, positions, fallback, diags)

    # Top-level vars are substituted before validation, so they may appear in ids
    # (paths, names); host vars are substituted per host, later.
    entries: list[ResourceEntry] = []
    # Addresses of resources that failed validation (or "kind:*" when the id is unknown):
    # references to them are not reported as missing, which would be a false alarm.
    unvalidated: set[str] = set()
    resolved_files: dict[str, str] = {}
    budget = SizeBudget()
    for kind, provider in providers.items():
        if kind not in merged or merged[kind] is None:
            continue
        merged[kind] = substitute_vars(merged[kind], global_vars, budget, (kind,))
        raw_items: list[tuple[tuple[str | int, ...], int, Any]]
        if provider.singleton and isinstance(merged[kind], list):
            raw_items = [((kind, i), i, item) for i, item in enumerate(merged[kind])]
        elif provider.singleton:
            raw_items = [((kind,), -1, merged[kind])]
        elif isinstance(merged[kind], list):
            raw_items = [((kind, i), i, item) for i, item in enumerate(merged[kind])]
        else:
            diags.error(f"expected a list, got {_describe(merged[kind])}", field_path=kind,
                        pos=_lookup_pos(positions, (kind,), fallback))
            continue
        for loc, index, item in raw_items:
            try:
                res = provider.model.model_validate(item)
            except ValidationError as exc:
                unvalidated.add(_address_of_invalid(provider, item))
                # A value YAML could not construct is None here: checks of the whole
                # resource ("set content or template") would blame the wrong thing.
                holds_broken = bool(broken) and any(
                    v in broken for p, v in positions.items() if p[:len(loc)] == loc)
                for err in exc.errors():
                    full = (*loc, *_clean_loc(err["loc"]))
                    if holds_broken and full == loc:
                        continue
                    report(err, full, _shown_path(full, file_index))
                if holds_broken:
                    continue
                # The fields that are fine may hide more mistakes (a model check, the
                # provider's own validate): look at the item without the broken fields.
                for full, message in _mistakes_beside(provider, item, exc, loc):
                    diags.error(message, field_path=_shown_path(full, file_index),
                                pos=_lookup_pos(positions, full, fallback))
                continue
            pos = _lookup_pos(positions, loc, fallback)
            if pos.file not in resolved_files:  # one realpath per file, not per resource
                resolved_files[pos.file] = str(Path(pos.file).resolve())
            res._source_file = resolved_files[pos.file]
            res._spec_root = str(spec_root)
            res._positions = {p[len(loc):]: v for p, v in positions.items() if p[:len(loc)] == loc}
            targets: frozenset[str] | None = None
            if res.hosts is not None:
                try:
                    targets = fleet.targets(res.hosts)
                except FleetError:
                    targets = frozenset(h for h in res.hosts if h in hosts)  # reported below
            entries.append(ResourceEntry(kind, provider.resource_id(res), index, res, pos,
                                         file_index.get((kind, index)), targets=targets))
    for path_ in budget.refused:
        diags.error(f"substituting variables here would build more than {budget.per_string:,} characters "
                    f"(or {budget.total:,} in all)", field_path=_shown_path(path_, file_index),
                    pos=_lookup_pos(positions, path_, fallback))

    entries += _implied_entries(providers, entries)
    if not given:
        providers = _with_prerequisite_kinds(providers, entries)
    spec = LoadedSpec(str(root), digest.hexdigest(), hosts, global_vars, entries, providers, positions,
                      root=str(spec_root), groups=groups, rollout=rollout, fleet=fleet, _host_vars=host_vars,
                      partial_providers=not given)
    spec.stack = stack if stack is not None else default_stack or default_stack_name(root)
    spec.adopt = frozenset(adopt)
    _check_stack(spec, stack is not None, adopt, diags)
    _check_semantics(spec, diags, check_refs=bool(hosts), unvalidated=frozenset(unvalidated),
                     oversized=frozenset(budget.refused))
    if diags.has_errors():
        return None, diags
    spec.warnings = diags.warnings
    return spec, diags


def _read_spec_file(f: Path, display: str, spec_root: Path, diags: Diagnostics, budget: int) -> bytes | None:
    """A spec file's bytes, or None with a diagnostic: outside the spec root (a symlink
    out of it is refused without being opened), too large, or unreadable."""
    if not is_inside(spec_root, f):
        diags.error(f"{display} is a symbolic link to a file outside the spec's repository ({spec_root}); "
                    "it is not read", pos=SourcePos(display, 1, 1))
        return None
    limit = min(MAX_SPEC_FILE_BYTES, max(budget, 0))
    try:
        fd = os.open(os.path.realpath(f), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        diags.error(f"cannot read: {exc.strerror}", pos=SourcePos(display, 1, 1))
        return None
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        raw = fh.read(limit + 1) if size <= limit else b""
    if size > limit or len(raw) > limit:
        which = (f"at most {MAX_SPEC_FILE_BYTES >> 20} MiB per file" if limit == MAX_SPEC_FILE_BYTES
                 else f"at most {MAX_SPEC_BYTES >> 20} MiB for the whole spec")
        diags.error(f"the file is {max(size, len(raw)) / (1 << 20):.1f} MiB; {which} is read",
                    pos=SourcePos(display, 1, 1))
        return None
    return raw


def _mistakes_beside(provider: Provider[Any], item: Any, exc: ValidationError,
                     loc: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """Mistakes pydantic's first failure hid: with the fields it refused left out, the
    model's own checks and the provider's ``validate`` run on what remains. Returns
    (full path, message) pairs for fields other than the refused ones. Best effort:
    when what remains is not a valid resource either, nothing more is said."""
    if not isinstance(item, dict):
        return []
    refused = {err["loc"][0] for err in exc.errors() if err["loc"] and isinstance(err["loc"][0], str)}
    if any(err["type"] == "missing" for err in exc.errors()):
        return []
    rest = {k: v for k, v in item.items() if k not in refused}
    # A check of the whole resource (no field path) may relate a left-out field to
    # others ("set exactly one of content or template"); it is only trusted when the
    # left-out fields were unknown keys, whose absence changes nothing.
    whole_ok = all(err["type"] == "extra_forbidden" for err in exc.errors())
    found: list[tuple[tuple[str | int, ...], str]] = []
    res: Resource | None = None
    if refused:
        try:
            res = provider.model.model_validate(rest)
        except ValidationError as again:
            for err in again.errors():
                where = _clean_loc(err["loc"])
                if err["type"] != "missing" and (where[0] not in refused if where else whole_ok):
                    found.append(((*loc, *where), _message(err, provider.model, where)))
            if any(_clean_loc(err["loc"]) for err in again.errors()):
                return found
    if res is None:
        # Only checks of the whole resource fail, so every remaining field is valid on
        # its own: the provider's checks of single fields still apply.
        res = provider.model.model_construct(**rest)
        whole_ok = False
    try:
        issues = provider.validate(res)
    except Exception:  # not written for a half-valid resource (model_construct keeps mappings)
        return found
    for issue in issues:
        if not issue.warning and (issue.path[0] not in refused if issue.path else whole_ok):
            found.append(((*loc, *issue.path), issue.message))
    return found


def _implied_entries(providers: Mapping[str, Provider[Any]], entries: list[ResourceEntry]) -> list[
        ResourceEntry]:
    """A default resource for each singleton kind the spec does not declare but that a
    declared resource implies (``Provider.implied_by``), on the hosts of those resources.
    It reports at the position of the first resource that implies it."""
    declared = {e.kind for e in entries}
    implied: list[ResourceEntry] = []
    for kind, provider in providers.items():
        if not provider.singleton or not provider.implied_by or kind in declared:
            continue
        implying = [e for e in entries if e.kind in provider.implied_by]
        if not implying:
            continue
        hosts = None if any(e.targets is None for e in implying) else sorted(
            {h for e in implying for h in e.targets or ()})
        res = provider.model.model_validate({} if hosts is None else {"hosts": hosts})
        res._source_file = implying[0].resource._source_file
        res._spec_root = implying[0].resource._spec_root
        implied.append(ResourceEntry(kind, provider.resource_id(res), -1, res, implying[0].pos, implied=True,
                                     targets=None if hosts is None else frozenset(hosts)))
    return implied


STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def default_stack_name(root: Path) -> str:
    """The stack name of a spec that sets none: its directory's name, or a single
    file's name without its suffix, with anything but letters, digits, ``_ . -``
    turned into ``-`` (``default`` if nothing is left). Distinct spec directories are
    thus distinct stacks unless they say otherwise; renaming the directory changes the
    stack (its objects are then another stack's, so set ``stack:`` to keep it)."""
    resolved = root.resolve()
    return _stack_name(resolved.name if resolved.is_dir() else resolved.stem)


def _stack_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:64] or "default"


def stack_name_in_repo(repo: str, path: str) -> str:
    """The default stack name of the spec at ``path`` inside git repository ``repo``, the
    same as a local run of that directory gets: the last component of ``path``, or the
    repository's name when ``path`` is its root (``git@h:org/infra.git`` -> ``infra``)."""
    parts = [p for p in Path(path).parts if p not in (".", "")]
    if not parts:
        return _stack_name(re.split(r"[/:]", repo.rstrip("/"))[-1].removesuffix(".git"))
    last = parts[-1]
    return _stack_name(Path(last).stem if last.endswith(SPEC_SUFFIXES) else last)


def _check_stack(spec: LoadedSpec, explicit: bool, adopt: list[str], diags: Diagnostics) -> None:
    """A stack name usable as a file name on the host; adopt names resources of this spec."""
    fallback = SourcePos(spec.path, 1, 1)
    if explicit and not STACK_NAME.fullmatch(spec.stack):
        diags.error("a stack name is 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
                    field_path="stack", pos=_lookup_pos(spec.positions, ("stack",), fallback))
    for i, address in enumerate(adopt):
        if address not in spec.by_address:
            diags.error(f"adopt names {address!r}, which this spec does not declare (write it as kind:id, "
                        "e.g. files:/etc/app.conf)", field_path=f"adopt[{i}]",
                        pos=_lookup_pos(spec.positions, ("adopt", i), fallback))


def _address_of_invalid(provider: Provider[Any], item: Any) -> str:
    """The address a resource that failed validation would have, when its id can be
    worked out from the raw data; else ``kind:*``."""
    try:
        return f"{provider.kind}:{provider.resource_id(provider.model.model_construct(**item))}"
    except Exception:  # any missing or malformed field: the id is unknown
        return f"{provider.kind}:*"


def _check_semantics(spec: LoadedSpec, diags: Diagnostics, *, check_refs: bool = True,
                     unvalidated: frozenset[str] = frozenset(),
                     oversized: frozenset[tuple[str | int, ...]] = frozenset()) -> None:
    """Checks across resources: hosts, dependencies, references, duplicates, cycles.
    ``unvalidated`` holds the addresses (``kind:*`` when the id is unknown) of resources
    that failed validation, so are missing from ``spec.entries``; references to them
    are not reported. ``oversized``: paths whose top-level substitution was refused
    (reported already)."""

    def invalid(address: str) -> bool:
        return address in unvalidated or f"{address.partition(':')[0]}:*" in unvalidated

    for name in spec.hosts:
        if not NAME.match(name):
            diags.error("host names may contain letters, digits, '_', '-' and '.'",
                        field_path=f"hosts.{name}", pos=spec.positions.get(("hosts", name)))
    _check_host_access(spec, diags)

    # Variables that still hold ${each:...} (fleet references that only resolve in a list).
    fleet_vars = {var for h in spec.hosts for var, value in spec.host_vars(h).items()
                  if has_fleet_refs(value)}

    # Which secrets exist, per host: names are the ids of secret-providing kinds.
    secret_entries = [e for e in spec.entries if spec.providers[e.kind].provides_secrets]

    seen: dict[tuple[str, str], list[ResourceEntry]] = {}
    budgets: dict[str, SizeBudget] = {}  # per host: what substituting its variables will build
    undefined: dict[tuple[str, str], list[str]] = {}

    def undefined_inside(host: str, var: str) -> list[str]:
        """Variables the value of ``var`` refers to that ``host`` does not define."""
        if (host, var) not in undefined:
            known = spec.host_vars(host)
            undefined[(host, var)] = sorted({r.name for r in references(known[var])
                                             if r.kind == "var" and r.name not in known})
        return undefined[(host, var)]

    for entry in spec.entries:
        res = entry.resource
        loc: tuple[str | int, ...] = (entry.kind, entry.index) if entry.index >= 0 else (entry.kind,)

        def at(*sub: str | int, _loc: tuple[str | int, ...] = loc, _entry: ResourceEntry = entry) -> tuple[
                str, SourcePos | None]:
            full = (*_loc, *sub)
            shown = format_path((_entry.field_path, *sub))
            return shown, _lookup_pos(spec.positions, full, _entry.pos or SourcePos(spec.path, 1, 1))

        if res.hosts is not None and check_refs:
            for i, h in enumerate(res.hosts):
                fp, pos = at("hosts", i)
                term = h[1:] if h.startswith("!") else h
                try:
                    matched = spec.fleet.select(term)
                except FleetError as exc:
                    diags.error(str(exc), field_path=fp, pos=pos)
                    continue
                if not matched:
                    diags.warning(f"{h!r} matches no host", field_path=fp, pos=pos)
        targets = [h for h in spec.hosts if spec.applies_to(entry, h)]

        # Duplicate ids: the same kind and id on an overlapping set of hosts.
        for h in targets:
            seen.setdefault((entry.address, h), []).append(entry)

        dumped = res.model_dump(mode="python")
        try:
            if check_refs and targets and has_fleet_refs(dumped):
                # What the provider will see is the resource as each host resolves it.
                issues = _validate_expanded(spec, entry, dumped, targets)
            else:
                issues = spec.providers[entry.kind].validate(res)
        except Exception as exc:  # a provider bug must not turn odd input into a traceback
            fp, pos = at()
            diags.error(f"internal error while validating this resource ({type(exc).__name__}: "
                        f"{str(exc)[:200]}); please report it", field_path=fp, pos=pos,
                        resource=entry.address)
            issues = []
        for issue in issues:
            fp, pos = at(*issue.path)
            if issue.warning:
                diags.warning(issue.message, field_path=fp, pos=pos, resource=entry.address)
            else:
                diags.error(issue.message, field_path=fp, pos=pos, resource=entry.address)

        for i, dep in enumerate(res.depends_on):
            selector, address = split_dependency(dep)
            fp, pos = at("depends_on", i)
            if selector is not None and check_refs:
                _check_cross_dependency(spec, entry, selector, address, invalid, diags, fp, pos)
                continue
            # A dependency on a resource that failed validation would be a false alarm.
            if dep not in spec.by_address and not invalid(dep):
                diags.error(f"depends on {dep!r}, which the spec does not define (write it as kind:id, "
                            f"e.g. {entry.address})", field_path=fp, pos=pos)

        _check_prerequisites(spec, diags, entry, targets, at)
        if check_refs:
            _check_fleet_refs(spec, entry, dumped, targets, fleet_vars, at, diags)
        for sub_path, text in walk_strings(dumped):
            for h in targets if (*loc, *sub_path) not in oversized else ():
                if not budgets.setdefault(h, SizeBudget()).allow(
                        substituted_length(text, spec.host_vars(h)), sub_path):
                    fp, pos = at(*sub_path)
                    diags.error(f"substituting host {h}'s variables here would build more than "
                                f"{MAX_STRING_CHARS:,} characters (or {MAX_TOTAL_CHARS:,} for the host)",
                                field_path=fp, pos=pos)
                    break
            for ref in dict.fromkeys(references(text)):
                fp, pos = at(*sub_path)
                if ref.kind == "var":
                    missing = [h for h in targets if ref.name not in spec.host_vars(h)]
                    if missing:
                        diags.error(f"unresolved variable ${{{ref.name}}} on host(s) {', '.join(missing)}",
                                    field_path=fp, pos=pos,
                                    hint="define it under hosts.NAME.vars or top-level vars")
                        continue
                    # A variable's own value may refer to one a host does not define.
                    inner = {name: h for h in targets for name in undefined_inside(h, ref.name)}
                    for name, h in inner.items():
                        diags.error(f"variable ${{{ref.name}}} refers to ${{{name}}}, which host {h} does "
                                    "not define", field_path=fp, pos=pos,
                                    hint="define it under hosts.NAME.vars or top-level vars")
                elif ref.kind in ("host", "each"):
                    continue  # checked per host by _check_fleet_refs
                elif ref.kind == "published":
                    problem = _published_problem(spec, ref.name, invalid)
                    if problem:
                        diags.error(problem, field_path=fp, pos=pos,
                                    hint="write ${published:HOST/KIND:ID/FIELD}, e.g. "
                                         "${published:db/backups:nightly/public_key}")
                elif "/" in ref.name:
                    problem = _remote_secret_problem(spec, ref.name, secret_entries, invalid)
                    if problem:
                        diags.error(problem, field_path=fp, pos=pos,
                                    hint="write ${secret:HOST/NAME}: a secret generated on another host, "
                                         "e.g. ${secret:database/db_password}")
                elif not any(invalid(f"{k}:{ref.name}") for k, p in spec.providers.items()
                             if p.provides_secrets):
                    for h in targets:
                        if not any(s.id == ref.name and spec.applies_to(s, h) for s in secret_entries):
                            diags.error(f"unresolved secret ${{secret:{ref.name}}}: no secret named "
                                        f"{ref.name!r} applies to host {h}", field_path=fp, pos=pos)
                            break

    reported: set[str] = set()
    for (address, _host), dupes in seen.items():
        if len(dupes) > 1 and address not in reported:
            reported.add(address)
            first, second = dupes[0], dupes[1]
            diags.error(f"{address} is defined twice (also at {first.pos})", field_path=second.field_path,
                        pos=second.pos, hint="give each a distinct id, or limit them to different hosts")
    _check_cycles(spec, diags)
    if check_refs:
        _check_host_cycles(spec, diags)


# ---------------------------------------------------------------------------------------
# The fleet: groups, group variables, fleet references, cross-host dependencies

def _check_groups(fleet: Fleet, groups: Mapping[str, GroupSpec], hosts: Mapping[str, HostSpec],
                  positions: Mapping[YPath, SourcePos], fallback: SourcePos, diags: Diagnostics) -> None:
    """Group names, members that name nothing, cycles; empty groups are a warning."""
    def where(group: str, index: int | None) -> tuple[str, SourcePos]:
        if group in groups:
            loc: tuple[str | int, ...] = ("groups", group, "hosts", index) if index is not None \
                else ("groups", group)
            return format_path(loc), _lookup_pos(positions, loc, fallback)
        for h, spec in hosts.items():  # declared by a host only
            if group in spec.groups:
                loc = ("hosts", h, "groups", spec.groups.index(group))
                return format_path(loc), _lookup_pos(positions, loc, fallback)
        return f"groups.{group}", fallback

    for group, index, message in fleet.problems:
        fp, pos = where(group, index)
        diags.error(message, field_path=fp, pos=pos)
    for name in groups:
        if not NAME.match(name):
            fp, pos = where(name, None)
            diags.error("group names may contain letters, digits, '_', '-' and '.'", field_path=fp, pos=pos)
        elif not fleet.members.get(name) and not any(p[0] == name for p in fleet.problems):
            fp, pos = where(name, None)
            diags.warning(f"group {name!r} has no hosts", field_path=fp, pos=pos)


def _group_vars(fleet: Fleet, groups: Mapping[str, GroupSpec], hosts: Mapping[str, HostSpec],
                positions: Mapping[YPath, SourcePos], fallback: SourcePos,
                diags: Diagnostics) -> dict[str, dict[str, str]]:
    """Per host, the variables its groups give it. Two groups of one host that set a
    variable to different values are an error, unless the host sets it itself (then
    the host's value is the answer, and nothing depends on the order of groups)."""
    out: dict[str, dict[str, str]] = {}
    reported: set[tuple[str, str, str]] = set()
    for host, spec in hosts.items():
        merged: dict[str, tuple[str, str]] = {}  # var -> (value, group)
        for group in fleet.groups_of.get(host, ()):
            for var, value in (groups[group].vars if group in groups else {}).items():
                text = _var_text(value)
                if var in merged and merged[var][0] != text and var not in spec.vars:
                    first = merged[var][1]
                    if (first, group, var) not in reported:
                        reported.add((first, group, var))
                        loc = ("groups", group, "vars", var)
                        diags.error(f"groups {first} and {group} both set variable {var!r}, differently, "
                                    f"and host {host} is in both", field_path=format_path(loc),
                                    pos=_lookup_pos(positions, loc, fallback),
                                    hint=f"set it under hosts.{host}.vars (a host's own vars win), or in "
                                         "one of the groups only")
                    continue
                merged.setdefault(var, (text, group))
        out[host] = {var: value for var, (value, _group) in merged.items()}
    return out


def _resolve_fleet_vars(fleet: Fleet, hosts: Mapping[str, HostSpec], groups: Mapping[str, GroupSpec],
                        host_vars: dict[str, dict[str, str]], positions: Mapping[YPath, SourcePos],
                        fallback: SourcePos, diags: Diagnostics) -> dict[str, dict[str, str]]:
    """Each host's variables with ``${host:...}`` references resolved; a reference that
    names nothing is reported once, where the variable is defined."""
    out: dict[str, dict[str, str]] = {}
    reported: set[tuple[YPath, str]] = set()
    for host, spec in hosts.items():
        values = dict(host_vars[host])
        for var, value in host_vars[host].items():
            if not has_fleet_refs(value):
                continue
            try:
                values[var] = fleet.resolved_vars(host)[var]
            except FleetError as exc:
                if var in spec.vars:
                    loc: YPath = ("hosts", host, "vars", var)
                else:
                    owner = next((g for g in fleet.groups_of.get(host, ())
                                  if g in groups and var in groups[g].vars), None)
                    loc = ("groups", owner, "vars", var) if owner else ("vars", var)
                if (loc, str(exc)) not in reported:
                    reported.add((loc, str(exc)))
                    diags.error(f"variable {var!r}: {exc}", field_path=format_path(loc),
                                pos=_lookup_pos(positions, loc, fallback))
        out[host] = values
    return out


def _check_fleet_refs(spec: LoadedSpec, entry: ResourceEntry, dumped: Any, targets: list[str],
                      fleet_vars: set[str], at: Callable[..., tuple[str, SourcePos | None]],
                      diags: Diagnostics) -> None:
    """Fleet references in one resource, as each host it applies to resolves them."""
    raw = has_fleet_refs(dumped)
    if not raw and not (fleet_vars and any(r.name in fleet_vars for _p, t in walk_strings(dumped)
                                           for r in references(t) if r.kind == "var")):
        return
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    for host in targets or list(spec.hosts)[:1]:
        data = substitute_vars(dumped, spec.host_vars(host))
        for path, message in spec.fleet.check(data):
            if (path, message) in seen:
                continue
            seen.add((path, message))
            fp, pos = at(*path)
            diags.error(message, field_path=fp, pos=pos, resource=entry.address,
                        hint="see docs/fleet.md: ${host:SELECTOR/FIELD}, ${each:SELECTOR/FIELD}")


def _validate_expanded(spec: LoadedSpec, entry: ResourceEntry, dumped: Any,
                       targets: list[str]) -> list[Issue]:
    """The provider's offline checks of a resource with fleet references, on the
    resource as each of its hosts resolves it; paths point at the spec as written (a
    list item repeated per host at the item that was written), each issue once."""
    provider = spec.providers[entry.kind]
    found: dict[tuple[tuple[str | int, ...], str], Issue] = {}
    for host in targets:
        try:
            data, written = spec.fleet.expand_traced(substitute_vars(dumped, spec.host_vars(host)))
        except FleetError:
            continue  # reported by _check_fleet_refs
        try:
            resolved = provider.model.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                path = written(_clean_loc(err["loc"]))
                message = f"on host {host}: {_message(err, provider.model, path)}"
                found.setdefault((path, message), Issue(path, message))
            continue
        resolved.copy_private_from(entry.resource)
        for issue in provider.validate(resolved):
            path = written(tuple(issue.path))
            found.setdefault((path, issue.message), Issue(path, issue.message, issue.warning))
    return list(found.values())


def _check_cross_dependency(spec: LoadedSpec, entry: ResourceEntry, selector: str, address: str,
                            invalid: Callable[[str], bool], diags: Diagnostics, fp: str,
                            pos: SourcePos | None) -> None:
    """``depends_on: [SELECTOR/KIND:ID]``: the selector names hosts, and the resource
    exists and applies to at least one of them."""
    try:
        selected = spec.fleet.select(selector)
    except FleetError as exc:
        diags.error(f"depends on {selector}/{address}: {exc}", field_path=fp, pos=pos)
        return
    if address not in spec.by_address:
        if not invalid(address):
            diags.error(f"depends on {selector}/{address}, but the spec does not define {address} (write "
                        "it as SELECTOR/kind:id, e.g. database/containers:postgres)", field_path=fp, pos=pos)
        return
    if selected and not any(spec.entry_for(address, h) is not None for h in selected):
        diags.error(f"depends on {selector}/{address}, but {address} applies to none of the hosts "
                    f"{selector} selects ({', '.join(selected)})", field_path=fp, pos=pos)
    elif not selected:
        diags.warning(f"{selector!r} matches no host, so this dependency waits for nothing",
                      field_path=fp, pos=pos)


def _check_host_cycles(spec: LoadedSpec, diags: Diagnostics) -> None:
    """Cross-host dependencies order whole hosts (a host waits for the hosts it depends
    on), so hosts that depend on each other would wait for ever: refused."""
    graph = {h: sorted({other for pairs in deps.values() for other, _a in pairs})
             for h, deps in spec.upstreams.items()}
    state: dict[str, int] = {}
    reported = False

    def visit(host: str, trail: list[str]) -> None:
        nonlocal reported
        state[host] = 1
        for dep in graph.get(host, []):
            if state.get(dep) == 1 and not reported:
                reported = True
                cycle = [*trail[trail.index(dep):], dep] if dep in trail else [host, dep]
                address = next(a for a, pairs in spec.upstreams[host].items()
                               if any(o == dep for o, _ in pairs))
                entry = spec.by_address[address]
                loc = (entry.kind, entry.index) if entry.index >= 0 else (entry.kind,)
                diags.error(f"hosts depend on each other in a cycle: {' -> '.join(cycle)} (a host is applied "
                            "after the hosts it depends on)", field_path=entry.field_path + ".depends_on",
                            pos=_lookup_pos(spec.positions, (*loc, "depends_on"), entry.pos or SourcePos(
                                spec.path, 1, 1)),
                            hint="a selector that includes this host's own group makes every member wait "
                                 "for the others; name the hosts it really waits for")
            elif state.get(dep) is None:
                visit(dep, [*trail, dep])
        state[host] = 2

    for host in spec.fleet.ordered(graph):
        if host not in state:
            visit(host, [host])


def _remote_secret_problem(spec: LoadedSpec, name: str, secret_entries: list[ResourceEntry],
                           invalid: Callable[[str], bool]) -> str | None:
    """Why ``${secret:SELECTOR/NAME}`` names no secret of one other host, or None."""
    selector, _, secret = name.partition("/")
    try:
        hosts = spec.fleet.select(selector)
    except FleetError as exc:
        return f"${{secret:{name}}}: {exc}"
    if len(hosts) != 1:
        return f"${{secret:{name}}}: {selector!r} names {len(hosts)} hosts; a secret comes from exactly one"
    if any(invalid(f"{k}:{secret}") for k, p in spec.providers.items() if p.provides_secrets):
        return None
    if not any(s.id == secret and spec.applies_to(s, hosts[0]) for s in secret_entries):
        return f"${{secret:{name}}}: no secret named {secret!r} applies to host {hosts[0]}"
    return None


def remote_secret_host(spec: LoadedSpec, name: str) -> tuple[str, str] | None:
    """``SELECTOR/NAME`` of ``${secret:SELECTOR/NAME}`` -> (the one host, NAME), or None."""
    selector, sep, secret = name.partition("/")
    if not sep:
        return None
    try:
        hosts = spec.fleet.select(selector)
    except FleetError:
        return None
    return (hosts[0], secret) if len(hosts) == 1 else None


def _check_prerequisites(spec: LoadedSpec, diags: Diagnostics, entry: ResourceEntry, targets: list[str],
                         at: Callable[..., tuple[str, SourcePos | None]]) -> None:
    """A prerequisite (``Provider.prerequisites``) of a kind the spec manages, that the
    spec does not declare for some of the entry's hosts: most likely forgotten, so a
    warning (the host may have it anyway; ``reconcile plan`` checks that on the host).
    When the spec declares nothing of that kind, the operator manages it elsewhere."""
    declared_kinds = {e.kind for e in spec.entries}
    for choice in spec.providers[entry.kind].prerequisites(entry.resource):
        addresses = (choice,) if isinstance(choice, str) else tuple(choice)
        if not any(a.partition(":")[0] in declared_kinds for a in addresses):
            continue
        lacking = [h for h in targets if not any(
            a in spec.by_address and spec.applies_to(spec.by_address[a], h) for a in addresses)]
        if lacking:
            fp, pos = at()
            diags.warning(f"needs {' or '.join(addresses)}, which the spec does not declare for host(s) "
                          f"{', '.join(lacking)}; they must already have it (`reconcile plan` checks)",
                          field_path=fp, pos=pos, resource=entry.address)


def _published_problem(spec: LoadedSpec, name: str, invalid: Callable[[str], bool]) -> str | None:
    """Why ``${published:NAME}`` names nothing, or None when it names a published field."""
    ref = parse_published(name)
    if ref is None:
        return f"${{published:{name}}}: expected HOST/KIND:ID/FIELD"
    if ref.host not in spec.hosts:
        return f"{ref}: unknown host {ref.host!r}; hosts are {', '.join(sorted(spec.hosts))}"
    if invalid(ref.address):
        return None  # reported where it is declared
    entry = spec.by_address.get(ref.address)
    if entry is None:
        return f"{ref}: the spec does not define {ref.address}"
    if spec.entry_for(ref.address, ref.host) is None:
        return f"{ref}: {ref.address} does not apply to host {ref.host}"
    fields = spec.providers[entry.kind].published_fields
    if ref.field not in fields:
        offered = ", ".join(sorted(fields)) if fields else "none"
        return f"{ref}: {entry.kind} publishes no field {ref.field!r} (it publishes: {offered})"
    return None


def _check_cycles(spec: LoadedSpec, diags: Diagnostics) -> None:
    graph = {e.address: list(e.resource.depends_on) for e in spec.entries}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                cycle = [*trail[trail.index(dep):], dep] if dep in trail else [node, dep]
                entry = spec.by_address[node]
                loc = (entry.kind, entry.index) if entry.index >= 0 else (entry.kind,)
                diags.error(f"dependency cycle: {' -> '.join(cycle)}",
                            field_path=entry.field_path + ".depends_on",
                            pos=_lookup_pos(spec.positions, (*loc, "depends_on"),
                                            entry.pos or SourcePos(spec.path, 1, 1)))
            elif state.get(dep) is None and dep in graph:
                visit(dep, [*trail, dep])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
