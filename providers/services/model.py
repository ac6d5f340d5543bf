"""The spec model of a systemd service (``services:`` entries) and its offline checks.

Field names are the user interface; their descriptions end up in ``reconcile schema``.
The safe choice is the default: the usual sandboxing switches are on unless a service
turns them off, ``restart`` is ``on-failure``, ``type`` is ``exec`` (a start fails when
the binary cannot be executed instead of looking like a successful start).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from reconciler.interpolate import references, walk_strings
from reconciler.provider import Issue, Resource

from ..common.checks import check_account, check_path, check_port

UNIT_DIR = "/etc/systemd/system"
ENV_DIR = "/etc/reconciler/services"
HEALTH_DIR = "/var/lib/reconciler/services"
"""``NAME.unhealthy`` here: the service's last health check failed (see ServicesProvider)."""
"""Where the ``environment`` of a service is written (root-only: it may hold secrets)."""

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
UNIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\\-]*"
                       r"\.(service|socket|target|mount|path|timer|device|slice|scope)$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ADDRESS = re.compile(r"^[a-z][a-z0-9_]*:.+$")
TIME_SPAN = re.compile(r"^\d+(\.\d+)?\s*(us|ms|s|sec|m|min|h|hr|d)?$")
BYTES = re.compile(r"^(\d+(\.\d+)?[KMGT]?|\d+(\.\d+)?%|infinity)$")
PERCENT = re.compile(r"^\d+%$")
NOFILE = re.compile(r"^(\d+|infinity)(:(\d+|infinity))?$")
CAPABILITY = re.compile(r"^CAP_[A-Z_]+$")
UMASK = re.compile(r"^0?[0-7]{3}$")
# Characters that would need quoting in a systemd path list or break a unit line.
_UNSAFE_IN_PATH = re.compile(r"[\s\"'\\;]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# YAML 1.1 reads an unquoted ``no`` as false; ``restart: no`` must still mean "no".
RestartPolicy = Annotated[Literal["always", "on-failure", "no"],
                          BeforeValidator(lambda v: "no" if v is False else v)]
EnvValue = str | bool | int | float


Profile = Literal["strict", "basic", "none"]
"""A sandboxing baseline; explicit ``hardening`` fields override it directive by directive."""


class Hardening(BaseModel):
    """systemd's sandboxing directives (systemd.exec(5)), as a ``profile`` plus overrides.

    ``profile: strict`` (the default) renders every directive ``systemd-analyze security``
    scores that an ordinary network service survives: the ``basic`` switches, plus
    ProtectSystem=strict, no capabilities, a ``@system-service`` system-call filter without
    ``@privileged`` and ``@resources`` (EPERM instead of a kill), native system calls only,
    AF_UNIX/AF_INET/AF_INET6 only, a private user namespace, ProtectProc=invisible,
    PrivateMounts, RemoveIPC and UMask=0027. ``basic`` is the reconciler's earlier default
    (the common switches, ProtectSystem=full); ``none`` renders only what is set here.

    Every field left unset takes the profile's value; a field that is set wins, so
    ``{protect_system: full}`` keeps strict for everything else. Lists replace the profile's
    list (``system_call_filter: []`` turns the filter off); ``read_write_paths``,
    ``read_only_paths`` and ``ambient_capabilities`` add to it. Opt-outs that are off in
    ``strict`` because they break common programs: ``memory_deny_write_execute`` (every JIT:
    Node.js, Java, .NET, PCRE JIT), ``proc_subset: pid`` (hides /proc/cpuinfo and meminfo),
    ``private_network`` and ``ip_address_allow`` (the service's own network needs).
    Writing ``hardening: strict`` (or basic, none) is short for ``{profile: strict}``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    profile: Profile = Field(default="strict",
                             description="strict (default), basic or none; the fields below override it.")
    no_new_privileges: bool | None = Field(default=None,
                                           description="NoNewPrivileges=: setuid binaries cannot escalate.")
    private_tmp: bool | None = Field(default=None, description="PrivateTmp=: own /tmp and /var/tmp.")
    protect_system: Literal["strict", "full"] | bool | None = Field(
        default=None, description="ProtectSystem=: full makes /usr, /boot and /etc read-only; strict (the "
                                  "strict profile) makes everything read-only except read_write_paths "
                                  "(and /dev, /proc, /sys).")
    protect_home: Literal["read-only", "tmpfs"] | bool | None = Field(
        default=None, description="ProtectHome=: true hides /home, /root and /run/user.")
    read_write_paths: list[str] = Field(default_factory=list,
                                        description="ReadWritePaths= (must exist; a leading - tolerates a "
                                                    "missing path).")
    read_only_paths: list[str] = Field(default_factory=list, description="ReadOnlyPaths=.")
    private_devices: bool | None = Field(default=None,
                                         description="PrivateDevices=: only pseudo devices in /dev.")
    private_mounts: bool | None = Field(
        default=None, description="PrivateMounts=: mounts made by the service stay private.")
    private_users: bool | None = Field(
        default=None, description="PrivateUsers=: a user namespace mapping only root and the service's own "
                                  "user and group (on in strict unless ambient_capabilities are set: "
                                  "capabilities do not reach the host from inside it).")
    private_network: bool | None = Field(
        default=None, description="PrivateNetwork=: only a loopback device of its own (Unix sockets on the "
                                  "file system still work). Off in every profile.")
    protect_kernel_tunables: bool | None = Field(default=None, description="ProtectKernelTunables=.")
    protect_kernel_modules: bool | None = Field(default=None, description="ProtectKernelModules=.")
    protect_kernel_logs: bool | None = Field(default=None, description="ProtectKernelLogs=.")
    protect_control_groups: bool | None = Field(default=None, description="ProtectControlGroups=.")
    protect_clock: bool | None = Field(default=None, description="ProtectClock=.")
    protect_hostname: bool | None = Field(default=None, description="ProtectHostname=.")
    protect_proc: Literal["invisible", "ptraceable", "noaccess", "default"] | None = Field(
        default=None, description="ProtectProc=: invisible (strict) hides other users' processes.")
    proc_subset: Literal["pid", "all"] | None = Field(
        default=None, description="ProcSubset=: pid hides everything in /proc but processes; off in strict "
                                  "because many programs read /proc/cpuinfo or /proc/meminfo.")
    restrict_namespaces: bool | None = Field(default=None,
                                             description="RestrictNamespaces=: no new namespaces.")
    restrict_realtime: bool | None = Field(default=None, description="RestrictRealtime=.")
    restrict_suid_sgid: bool | None = Field(default=None,
                                            description="RestrictSUIDSGID=: cannot create setuid files.")
    lock_personality: bool | None = Field(default=None, description="LockPersonality=.")
    memory_deny_write_execute: bool | None = Field(
        default=None, description="MemoryDenyWriteExecute=: off in every profile, it breaks JIT runtimes "
                                  "(Node.js, Java, .NET); turn it on for programs without one.")
    remove_ipc: bool | None = Field(default=None,
                                    description="RemoveIPC=: SysV IPC objects go when the service stops.")
    umask: str | None = Field(default=None, description='UMask=, e.g. "0027" (strict): new files are not '
                                                        "world-readable.")
    capability_bounding_set: list[str] | None = Field(
        default=None,
        description="CapabilityBoundingSet=; [] drops every capability (strict: none but the "
                    "ambient_capabilities); unset in basic keeps systemd's default.")
    ambient_capabilities: list[str] = Field(
        default_factory=list,
        description="AmbientCapabilities=, e.g. [CAP_NET_BIND_SERVICE] for port 80 as a user.")
    system_call_architectures: list[str] | None = Field(
        default=None, description="SystemCallArchitectures=; strict: [native].")
    system_call_filter: list[str] | None = Field(
        default=None, description="SystemCallFilter= lines; strict: ['@system-service', '~@privileged', "
                                  "'~@resources']; []: no filter.")
    system_call_error_number: str | None = Field(
        default=None, description="SystemCallErrorNumber=: what a filtered call returns (strict: EPERM); "
                                  "unset, systemd kills the process with SIGSYS.")
    restrict_address_families: list[str] | None = Field(
        default=None, description="RestrictAddressFamilies=; strict: [AF_UNIX, AF_INET, AF_INET6]; [] allows "
                                  "all.")
    ip_address_allow: list[str] | None = Field(
        default=None, description="IPAddressAllow= with IPAddressDeny=any: the only peers it may talk to "
                                  "(e.g. [localhost] or [127.0.0.0/8, 10.0.0.0/8]). Off in every profile.")


# Each profile's value per Hardening field (absent: not rendered).
BASIC: Mapping[str, Any] = {
    "no_new_privileges": True,
    "private_tmp": True,
    "protect_system": "full",
    "protect_home": True,
    "private_devices": True,
    "protect_kernel_tunables": True,
    "protect_kernel_modules": True,
    "protect_kernel_logs": True,
    "protect_control_groups": True,
    "protect_clock": True,
    "protect_hostname": True,
    "restrict_namespaces": True,
    "restrict_realtime": True,
    "restrict_suid_sgid": True,
    "lock_personality": True,
    "memory_deny_write_execute": False,
}

STRICT: Mapping[str, Any] = {
    **BASIC,
    "protect_system": "strict",
    # Implied by the mount sandboxing above when systemd runs it; stated so that an
    # offline analysis (of a unit not yet installed) scores it the same as systemd does.
    "private_mounts": True,
    "private_users": True,
    "protect_proc": "invisible",
    "remove_ipc": True,
    "umask": "0027",
    "capability_bounding_set": [],
    "system_call_architectures": ["native"],
    # @system-service is systemd's list for ordinary services; @privileged (chown,
    # setuid, mount ...) and @resources (setrlimit, nice ...) are what it still allows
    # that a service running as its own user has no use for.
    "system_call_filter": ["@system-service", "~@privileged", "~@resources"],
    "system_call_error_number": "EPERM",
    "restrict_address_families": ["AF_UNIX", "AF_INET", "AF_INET6"],
}

PROFILES: Mapping[str, Mapping[str, Any]] = {"strict": STRICT, "basic": BASIC, "none": {}}

# Fields that add to the profile instead of replacing it.
ADDITIVE = ("read_write_paths", "read_only_paths", "ambient_capabilities")


@dataclass(frozen=True)
class Resolved:
    """Every directive's value after the profile and the overrides (None: not rendered)."""

    values: Mapping[str, Any]

    def __getitem__(self, field: str) -> Any:
        return self.values.get(field)


def resolve(h: Hardening) -> Resolved:
    """The profile's values with the spec's own fields on top."""
    base = dict(PROFILES[h.profile])
    for field in type(h).model_fields:
        if field == "profile":
            continue
        value = getattr(h, field)
        if field in ADDITIVE:
            base[field] = [*base.get(field, []), *value]
        elif field in h.model_fields_set and value is not None:
            base[field] = value
    if h.ambient_capabilities:
        # Capabilities granted to the process must be in the bounding set, and they do
        # not reach the host from inside a private user namespace.
        if "capability_bounding_set" not in h.model_fields_set and base.get("capability_bounding_set") == []:
            base["capability_bounding_set"] = list(h.ambient_capabilities)
        if "private_users" not in h.model_fields_set and base.get("private_users"):
            base["private_users"] = False
    return Resolved(base)



def _profile_shorthand(value: object) -> object:
    """``hardening: strict`` -> ``{profile: strict}``."""
    return {"profile": value} if isinstance(value, str) else value


class Limits(BaseModel):
    """Resource limits (systemd.resource-control(5), LimitNOFILE=)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    memory_max: str | int | None = Field(default=None, description='MemoryMax=, e.g. "256M", "1G", "50%".')
    cpu_quota: str | None = Field(default=None, description='CPUQuota=, e.g. "100%" (one core), "50%".')
    nofile: int | str | None = Field(default=None, description='LimitNOFILE=, e.g. 65536 or "1024:65536".')
    tasks_max: int | None = Field(default=None, description="TasksMax=: most processes and threads.")


class Health(BaseModel):
    """How to tell the service works, checked ON THE HOST after every start or restart
    (its ports are usually not reachable from where reconcile runs). Exactly one of
    http, tcp, command."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    http: str | None = Field(default=None, description="URL fetched with curl on the host.")
    expect_status: int = Field(default=200, description="HTTP status the URL must answer (with http).")
    expect_json: dict[str, Any] | None = Field(
        default=None, description="Keys the JSON body must contain with these values (with http).")
    tcp: str | None = Field(default=None, description='"HOST:PORT" that must accept a connection.')
    command: list[str] | None = Field(default=None, description="Command (argv) that must exit 0.")
    timeout: float | int = Field(default=30, description="Seconds to wait for the service to become healthy.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Health:
        chosen = [k for k in ("http", "tcp", "command") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(f"set exactly one of http, tcp or command (got {', '.join(chosen) or 'none'})")
        return self


# Fields that describe the unit; ``unit`` (raw text) replaces all of them.
MODELLED_FIELDS = ("description", "exec", "working_directory", "user", "group", "environment",
                   "environment_file", "after", "requires", "wants", "restart", "restart_sec", "type",
                   "remain_after_exit", "hardening", "limits")


class Service(Resource):
    """A systemd service rendered into /etc/systemd/system/NAME.service."""

    name: str = Field(description="Unit name without .service.")
    description: str = Field(default="", description="Description= (default: the name).")
    exec: list[str] | str | None = Field(
        default=None, description="ExecStart=. A list is literal arguments (quoted for systemd, no $VAR or "
                                  "%-specifier expansion); a string is systemd's own command-line syntax.")
    working_directory: str | None = Field(default=None, description="WorkingDirectory= (absolute).")
    user: str | None = Field(default=None, description="User= (default root).")
    group: str | None = Field(default=None, description="Group= (default: the user's group).")
    environment: dict[str, EnvValue] = Field(
        default_factory=dict, description="Variables; values may use ${secret:NAME}. Written to a root-only "
                                          f"file {ENV_DIR}/NAME.env, never into the world-readable unit.")
    environment_file: str | None = Field(
        default=None, description="EnvironmentFile= read before `environment` (which wins on conflicts). "
                                  "When a files: resource manages it, its changes restart the service.")
    after: list[str] = Field(default_factory=list,
                             description="After= units; a bare name means NAME.service.")
    requires: list[str] = Field(default_factory=list, description="Requires= units (also add them to after).")
    wants: list[str] = Field(default_factory=list, description="Wants= units.")
    restart: RestartPolicy = Field(default="on-failure", description="Restart=: always, on-failure or no.")
    restart_sec: str | int | float | None = Field(default=None, description='RestartSec=, e.g. 5 or "500ms".')
    type: Literal["simple", "exec", "notify", "forking", "oneshot"] = Field(
        default="exec", description="Type=.")
    remain_after_exit: bool = Field(default=False, description="RemainAfterExit= (for oneshot services).")
    hardening: Annotated[Hardening, BeforeValidator(_profile_shorthand)] = Field(
        default_factory=Hardening, description="Sandboxing: a profile (strict, the default; basic; none) "
                                               "and per-directive overrides; see Hardening.")
    limits: Limits = Field(default_factory=Limits,
                           description="Resource limits (memory, CPU, tasks, files).")
    enabled: bool = Field(default=True, description="Start at boot.")
    state: Literal["running", "stopped"] = Field(default="running", description="Whether it runs now.")
    restart_on: list[str] = Field(
        default_factory=list, description="Addresses (kind:id, e.g. files:/opt/app/config.yaml) whose change "
                                          "in a run restarts the service.")
    health: Health | None = Field(default=None, description="Checked after every start or restart.")
    unit: str | None = Field(
        default=None, description="Raw unit text for what is not modelled; excludes the modelled fields.")

    @model_validator(mode="after")
    def _unit_or_modelled(self) -> Service:
        if self.unit is not None:
            clashing = [f for f in MODELLED_FIELDS if f in self.model_fields_set]
            if clashing:
                raise ValueError(f"`unit` (raw text) cannot be combined with {', '.join(clashing)}; "
                                 "put those settings into the unit text")
        elif self.exec is None:
            raise ValueError("set `exec` (the command to run) or `unit` (raw unit text)")
        return self

    @property
    def unit_name(self) -> str:
        return f"{self.name}.service"

    @property
    def unit_path(self) -> str:
        return f"{UNIT_DIR}/{self.name}.service"

    @property
    def env_path(self) -> str:
        return f"{ENV_DIR}/{self.name}.env"

    @property
    def unhealthy_marker(self) -> str:
        return f"{HEALTH_DIR}/{self.name}.unhealthy"


def unit_reference(name: str) -> str:
    """``backend`` -> ``backend.service``; names with a unit suffix stay as they are."""
    return name if UNIT_NAME.match(name) else f"{name}.service"


def secret_env_keys(service: Service) -> set[str]:
    """Environment keys whose value references a secret (their values are never shown)."""
    return {k for k, v in service.environment.items()
            if isinstance(v, str) and any(r.kind == "secret" for r in references(v))}


def validate_service(s: Service) -> list[Issue]:
    """Offline checks beyond the types: names, paths, formats, and combinations that
    systemd would accept but that cannot work (a oneshot that should stay running)."""
    issues: list[Issue] = []
    if s.name.endswith(".service"):
        bare = s.name.removesuffix(".service")
        issues.append(Issue(("name",), f"write the name without .service: {bare!r}"))
    elif not NAME.match(s.name):
        issues.append(Issue(("name",), "a unit name may contain letters, digits and _ . : - "
                                       "(templates with @ are not supported)"))
    if s.unit is not None:
        issues += _validate_raw_unit(s)
    else:
        issues += _validate_modelled(s)
    for i, address in enumerate(s.restart_on):
        if not ADDRESS.match(address):
            issues.append(Issue(("restart_on", i), "expected an address kind:id such as "
                                                   f"files:/opt/app/.env, got {address!r}"))
    if s.health is not None:
        issues += _validate_health(s.health, s.state)
    # A secret in the unit, its arguments or a health check would be world-readable
    # (unit files are 0644, /proc/PID/cmdline is public); only `environment` is private.
    dumped = s.model_dump(mode="python", exclude={"environment"})
    for path, text in walk_strings(dumped):
        if any(r.kind == "secret" for r in references(text)):
            issues.append(Issue(path, "${secret:...} is only allowed in `environment` values: unit files and "
                                      "command lines are readable by every user on the host"))
    return issues


def _validate_raw_unit(s: Service) -> list[Issue]:
    assert s.unit is not None
    issues: list[Issue] = []
    sections = set(re.findall(r"^\s*\[([A-Za-z]+)\]\s*$", s.unit, re.MULTILINE))
    if "Service" not in sections:
        issues.append(Issue(("unit",), "raw unit text needs a [Service] section"))
    if s.enabled and "Install" not in sections:
        issues.append(Issue(("unit",), "an enabled service needs an [Install] section "
                                       "(e.g. WantedBy=multi-user.target), or set enabled: false"))
    return issues


def _validate_modelled(s: Service) -> list[Issue]:
    issues: list[Issue] = []
    if isinstance(s.exec, list):
        if not s.exec or not s.exec[0]:
            issues.append(Issue(("exec",), "the command must not be empty"))
        elif not re.match(r"^(/[^\s\"'\\%$;]*|[A-Za-z0-9_][A-Za-z0-9_.+-]*)$", s.exec[0]):
            issues.append(Issue(("exec", 0), "the program must be an absolute path or a plain command name"))
        for i, arg in enumerate(s.exec):
            if "\0" in arg:
                issues.append(Issue(("exec", i), "must not contain NUL"))
    elif s.exec is not None and (not s.exec.strip() or "\n" in s.exec):
        issues.append(Issue(("exec",), "the command line must be one non-empty line"))
    if _CONTROL.search(s.description):
        issues.append(Issue(("description",), "must be one line without control characters"))
    for field in ("working_directory", "environment_file"):
        value = getattr(s, field)
        if value is not None:
            issues += check_path(value, field) or _path_safe(value, (field,))
    issues += check_account(s.user, "user") + check_account(s.group, "group")
    for key, value in s.environment.items():
        if not ENV_KEY.match(key):
            issues.append(Issue(("environment", key), "variable names are letters, digits and _, "
                                                      "not starting with a digit"))
        if isinstance(value, str) and "\0" in value:
            issues.append(Issue(("environment", key), "must not contain NUL"))
    for field in ("after", "requires", "wants"):
        for i, ref in enumerate(getattr(s, field)):
            if not UNIT_NAME.match(unit_reference(ref)):
                issues.append(Issue((field, i), f"{ref!r} is not a unit name"))
    if s.restart_sec is not None and isinstance(s.restart_sec, str) and not TIME_SPAN.match(s.restart_sec):
        issues.append(Issue(("restart_sec",), 'expected seconds or a time span such as "5s" or "500ms"'))
    if s.type == "oneshot" and s.state == "running" and not s.remain_after_exit:
        issues.append(Issue(("remain_after_exit",), "a oneshot service is inactive once it has run; set "
                                                    "remain_after_exit: true for it to count as running"))
    if s.type == "oneshot" and s.restart == "always":
        issues.append(Issue(("restart",), "systemd refuses Restart=always for oneshot services"))
    issues += _validate_hardening(s)
    issues += _validate_limits(s.limits)
    return issues


def _path_safe(path: str, where: tuple[str | int, ...]) -> list[Issue]:
    if _UNSAFE_IN_PATH.search(path):
        return [Issue(where, "paths with spaces, quotes, backslashes or ';' are not supported")]
    return []


def _validate_hardening(s: Service) -> list[Issue]:
    h = s.hardening
    resolved = resolve(h)
    issues: list[Issue] = []
    for field in ("read_write_paths", "read_only_paths"):
        for i, p in enumerate(getattr(h, field)):
            where: tuple[str | int, ...] = ("hardening", field, i)
            found = check_path(p.lstrip("-"), "hardening")
            issues += [Issue(where, x.message) for x in found] or _path_safe(p, where)
    for field in ("capability_bounding_set", "ambient_capabilities"):
        for i, cap in enumerate(getattr(h, field) or []):
            if not CAPABILITY.match(cap):
                issues.append(Issue(("hardening", field, i),
                                    f"expected a capability such as CAP_NET_BIND_SERVICE, got {cap!r}"))
    bounding = resolved["capability_bounding_set"]
    if bounding is not None and "capability_bounding_set" in h.model_fields_set:
        for i, cap in enumerate(h.ambient_capabilities):
            if cap not in bounding:
                issues.append(Issue(("hardening", "ambient_capabilities", i),
                                    f"{cap} is not in hardening.capability_bounding_set, so systemd cannot "
                                    "grant it"))
    for field in ("system_call_filter", "restrict_address_families", "system_call_architectures"):
        for i, item in enumerate(getattr(h, field) or []):
            if not re.match(r"^~?[@A-Za-z0-9_:-]+$", item):
                issues.append(Issue(("hardening", field, i), f"{item!r} is not a valid entry"))
    for i, peer in enumerate(h.ip_address_allow or []):
        if not re.match(r"^[A-Za-z0-9.:/-]+$", peer):
            issues.append(Issue(("hardening", "ip_address_allow", i), f"{peer!r} is not an address, prefix "
                                "or one of localhost, link-local, multicast, any"))
    if h.umask is not None and not UMASK.match(h.umask):
        issues.append(Issue(("hardening", "umask"),
                            f'expected an octal mask such as "0027", got {h.umask!r}'))
    if h.system_call_error_number is not None and not re.match(r"^[A-Z][A-Z0-9]*$|^kill$",
                                                               h.system_call_error_number):
        issues.append(Issue(("hardening", "system_call_error_number"),
                            f"expected an errno name such as EPERM, got {h.system_call_error_number!r}"))
    # systemd reads one list: a ~ on the first entry makes all of it a deny list.
    for i, family in enumerate((h.restrict_address_families or [])[1:], start=1):
        if family.startswith("~"):
            issues.append(Issue(("hardening", "restrict_address_families", i), "only the first entry may "
                                "start with ~ (it makes the whole list a deny list)"))
    # ProtectHome hides these; a service living there would fail with a puzzling ENOENT.
    if resolved["protect_home"] is True:
        homes = ("/home/", "/root/", "/run/user/")
        candidates = [("working_directory",), ("exec", 0)]
        for where in candidates:
            value = s.working_directory if where[0] == "working_directory" else (
                s.exec[0] if isinstance(s.exec, list) and s.exec else None)
            if value and (value + "/").startswith(homes):
                issues.append(Issue(where, f"{value} is hidden by hardening.protect_home (on by default); "
                                           "set hardening.protect_home: read-only or false"))
    return issues


def _validate_limits(limits: Limits) -> list[Issue]:
    issues: list[Issue] = []
    if isinstance(limits.memory_max, str) and not BYTES.match(limits.memory_max):
        issues.append(Issue(("limits", "memory_max"),
                            'expected a size such as "256M", "1G", "50%" or "infinity"'))
    if limits.cpu_quota is not None and not PERCENT.match(limits.cpu_quota):
        issues.append(Issue(("limits", "cpu_quota"), 'expected a percentage such as "100%" (one core)'))
    if isinstance(limits.nofile, str) and not NOFILE.match(limits.nofile):
        issues.append(Issue(("limits", "nofile"), 'expected a number or "SOFT:HARD", e.g. "1024:65536"'))
    for field in ("memory_max", "nofile", "tasks_max"):
        value = getattr(limits, field)
        if isinstance(value, int) and value <= 0:
            issues.append(Issue(("limits", field), "must be positive"))
    return issues


def _validate_health(h: Health, state: str) -> list[Issue]:
    issues: list[Issue] = []
    if h.http is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", h.http):
        issues.append(Issue(("health", "http"), "expected an http:// or https:// URL"))
    elif h.http is not None:
        issues += check_port(h.http, ("health", "http"))
    if h.http is None and ("expect_status" in h.model_fields_set or h.expect_json is not None):
        issues.append(Issue(("health",), "expect_status and expect_json only apply to an http check"))
    if h.tcp is not None:
        host, sep, port = h.tcp.rpartition(":")
        if not sep or not host or not port.isdigit():
            issues.append(Issue(("health", "tcp"), 'expected "HOST:PORT", e.g. "127.0.0.1:5432"'))
        else:
            issues += check_port(h.tcp, ("health", "tcp"))
    if h.command is not None and not h.command:
        issues.append(Issue(("health", "command"), "the command must not be empty"))
    if h.timeout <= 0:
        issues.append(Issue(("health", "timeout"), "must be positive"))
    if state == "stopped":
        issues.append(Issue(("health",), "a stopped service is never health-checked", warning=True))
    return issues
