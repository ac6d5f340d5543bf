"""Hardening profiles: a ``Hardening`` (profile + overrides) resolved into the sandboxing
directives of a unit or drop-in (pure functions).

Profiles are data (``model.PROFILES``); ``model.resolve`` puts a spec's own fields over
its profile's values. The directives are those ``systemd-analyze security`` scores;
which of them a program survives is documented on ``Hardening``. ``strict`` reaches an
exposure of about 1 ("OK") for a network service running as its own user (measured
with systemd 252 on Debian 12).

The lines are the same whether they end up in a unit the reconciler owns
(``services``) or in a drop-in for a unit it only starts (nginx's), so one profile
means one thing everywhere.
"""

from __future__ import annotations

from .model import Hardening, resolve


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _flag(value: bool | str) -> str:
    return _yes(value) if isinstance(value, bool) else value


def _escape(path: str) -> str:
    return path.replace("%", "%%")


# (field, directive) in the order they are written; bools as yes/no.
_SWITCHES = (
    ("no_new_privileges", "NoNewPrivileges"), ("private_tmp", "PrivateTmp"),
    ("protect_system", "ProtectSystem"), ("protect_home", "ProtectHome"),
    ("private_devices", "PrivateDevices"), ("private_mounts", "PrivateMounts"),
    ("private_users", "PrivateUsers"), ("private_network", "PrivateNetwork"),
    ("protect_kernel_tunables", "ProtectKernelTunables"), ("protect_kernel_modules", "ProtectKernelModules"),
    ("protect_kernel_logs", "ProtectKernelLogs"), ("protect_control_groups", "ProtectControlGroups"),
    ("protect_clock", "ProtectClock"), ("protect_hostname", "ProtectHostname"),
    ("protect_proc", "ProtectProc"), ("proc_subset", "ProcSubset"),
    ("restrict_namespaces", "RestrictNamespaces"), ("restrict_realtime", "RestrictRealtime"),
    ("restrict_suid_sgid", "RestrictSUIDSGID"), ("lock_personality", "LockPersonality"),
    ("memory_deny_write_execute", "MemoryDenyWriteExecute"), ("remove_ipc", "RemoveIPC"),
    ("umask", "UMask"),
)


def directive_lines(h: Hardening) -> list[str]:
    """The sandboxing lines for a [Service] section."""
    r = resolve(h)
    lines = [f"{directive}={_flag(r[field])}" for field, directive in _SWITCHES if r[field] is not None]
    if r["read_write_paths"]:
        lines.append("ReadWritePaths=" + " ".join(_escape(p) for p in r["read_write_paths"]))
    if r["read_only_paths"]:
        lines.append("ReadOnlyPaths=" + " ".join(_escape(p) for p in r["read_only_paths"]))
    if r["capability_bounding_set"] is not None:
        lines.append("CapabilityBoundingSet=" + " ".join(r["capability_bounding_set"]))
    if r["ambient_capabilities"]:
        lines.append("AmbientCapabilities=" + " ".join(r["ambient_capabilities"]))
    if r["system_call_architectures"]:
        lines.append("SystemCallArchitectures=" + " ".join(r["system_call_architectures"]))
    # One line each: a leading ~ turns a whole line into a deny list, so allow and deny
    # entries must not share a line.
    lines += [f"SystemCallFilter={entry}" for entry in r["system_call_filter"] or []]
    if r["system_call_filter"] and r["system_call_error_number"]:
        lines.append(f"SystemCallErrorNumber={r['system_call_error_number']}")
    if r["restrict_address_families"]:
        lines.append("RestrictAddressFamilies=" + " ".join(r["restrict_address_families"]))
    if r["ip_address_allow"] is not None:
        lines += ["IPAddressDeny=any", "IPAddressAllow=" + " ".join(r["ip_address_allow"])]
    return lines


# Journal phrases and the directive that most likely caused them, for the hint added
# to a failed start or health check of a sandboxed service.
_SYMPTOMS = (
    ("Read-only file system", "ProtectSystem=strict makes the file system read-only: add the directory the "
                              "program writes to hardening.read_write_paths (or set "
                              "hardening.protect_system: full)"),
    ("status=226/NAMESPACE", "systemd could not set up the file system sandbox, usually a "
                             "hardening.read_write_paths or read_only_paths entry that does not exist "
                             "(prefix it with - to tolerate that)"),
    ("status=31/SYS", "the program made a system call outside hardening.system_call_filter"),
    ("Bad system call", "the program made a system call outside hardening.system_call_filter"),
    ("Address family not supported", "a socket family outside hardening.restrict_address_families"),
    ("status=218/CAPABILITIES", "a capability outside hardening.capability_bounding_set"),
    ("Operation not permitted", "a dropped capability (hardening.capability_bounding_set: [] in strict) or a "
                                "system call filtered with EPERM (hardening.system_call_filter)"),
    ("Permission denied", "hardening.protect_home hides /home and /root; hardening.private_users maps other "
                          "users to nobody; hardening.umask (0027 in strict) keeps new files from others"),
)


def failure_hint(h: Hardening, journal: str) -> str:
    """What to try when a hardened service failed: the directives its journal points at,
    then the general way out. Empty for ``profile: none`` with no directive set."""
    r = resolve(h)
    if not any(r[field] for field, _ in _SWITCHES) and not r["system_call_filter"]:
        return ""
    suspects = list(dict.fromkeys(text for needle, text in _SYMPTOMS if needle in journal))
    lines = [f"hint: the service runs sandboxed (hardening profile {h.profile})."]
    lines += [f"  - {text}" for text in suspects]
    lines.append("  Turn off the one directive it needs (e.g. hardening.private_users: false) rather than "
                 "the profile; hardening: basic is the older, laxer default.")
    return "\n".join(lines)
