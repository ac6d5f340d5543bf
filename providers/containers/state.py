"""Container state as plain data: what the spec wants, what ``docker inspect`` shows,
and the engine's create parameters. Pure functions; no host, no SDK calls.

Both sides use one spelling per value (ports as ``127.0.0.1:5432:5432/tcp``, mounts
as ``source:target:mode``, durations as "1m30s", memory in bytes) so the
engine's field-by-field diff reads like the spec.

Ownership and drift. Every container the reconciler creates carries
``io.reconciler.managed=true`` and ``io.reconciler.spec-hash=<hash>``. The hash
covers the container's whole configuration as written in the spec (secret
references unresolved, so it reveals nothing), which catches what a field diff
cannot see, such as a label removed from the spec. Observed ``env`` and
``labels`` hold the keys the spec sets plus any the container has beyond its
image's defaults, so a key that left the spec shows up as a change too. Values
the spec does not set are shown as ``(sensitive)``: they might be secrets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.provider import State
from reconciler.sensitive import KnownAfterApply, Sensitive

from .model import (
    Container,
    PortSpec,
    argv_of,
    duration_ns,
    format_duration,
    parse_port,
    size_bytes,
)

MANAGED_LABEL = "io.reconciler.managed"
SPEC_HASH_LABEL = "io.reconciler.spec-hash"
REMOVE_VOLUMES_LABEL = "io.reconciler.remove-volumes-on-prune"
OWN_LABELS = (MANAGED_LABEL, SPEC_HASH_LABEL, REMOVE_VOLUMES_LABEL)

# Spec fields that steer the reconciler rather than describe the container: a change
# in them is not a reason to recreate it.
_NOT_CONFIG = frozenset({"hosts", "depends_on", "pull", "state", "wait_healthy", "wait_timeout",
                         "remove_volumes_on_prune"})

# Fields that change without recreating the container: start/stop, and waiting for
# health (an unhealthy container is reported, with its logs, not restarted).
IN_PLACE_FIELDS = frozenset({"state", "health"})

Reveal = Callable[[str], "str | Sensitive | KnownAfterApply"]


def spec_hash(res: Container) -> str:
    """Hash of the container configuration as written (``${secret:...}`` unresolved)."""
    data = res.model_dump(mode="json", exclude=set(_NOT_CONFIG))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def mount_specs(res: Container) -> tuple[list[str], list[str]]:
    """(volumes, binds) as the engine's ``Binds`` strings, sorted."""
    volumes = sorted(f"{v.name}:{v.target}:{v.mode}" for v in res.volumes)
    binds = sorted(f"{b.source}:{b.target}:{b.mode}" for b in res.binds)
    return volumes, binds


def restart_text(name: str, retries: int) -> str:
    if name == "on-failure" and retries:
        return f"on-failure:{retries}"
    return name or "no"


def healthcheck_state(res: Container) -> dict[str, Any] | None:
    """The fields of the healthcheck the spec sets, in the engine's units."""
    hc = res.healthcheck
    if hc is None:
        return None
    out: dict[str, Any] = {"test": hc.test_argv()}
    for key, value in (("interval", hc.interval), ("timeout", hc.timeout), ("start_period", hc.start_period)):
        if value is not None:
            out[key] = format_duration(duration_ns(value))
    if hc.retries is not None:
        out["retries"] = hc.retries
    return out


def desired_state(res: Container, reveal: Reveal, image_id: str | None) -> State:
    """What the spec asks for: only the fields it sets (plus the ownership fields).

    ``image_id`` is the id the image reference has on the host now, when it is
    there: a container running another image (a new one was loaded or pulled
    under the same tag) is then a change. With ``wait_healthy`` the container is
    also expected to be healthy: one that is not fails every apply with its logs
    until it is, rather than passing as converged.
    """
    volumes, binds = mount_specs(res)
    state: State = {
        "image": res.image,
        "env": {k: reveal(str(v)) for k, v in res.env.items()},
        "ports": sorted(parse_port(p).canonical() for p in res.ports),
        "volumes": volumes,
        "binds": binds,
        "restart": restart_text(*_restart_parts(res.restart)),
        "labels": dict(res.labels),
        "state": res.state,
        "spec_hash": spec_hash(res),
        "remove_volumes_on_prune": res.remove_volumes_on_prune,
    }
    if image_id is not None:
        state["image_id"] = image_id
    if res.waits_healthy:
        state["health"] = "healthy"
    optional: dict[str, Any] = {
        "command": argv_of(res.command),
        "entrypoint": argv_of(res.entrypoint),
        "networks": sorted(res.networks) if res.networks is not None else None,
        "healthcheck": healthcheck_state(res),
        "memory": size_bytes(res.memory) if res.memory is not None else None,
        "cpus": float(res.cpus) if res.cpus is not None else None,
        "log": {"driver": res.log.driver, "options": dict(res.log.options)} if res.log is not None else None,
        "user": res.user,
        "stop_timeout": stop_seconds(res),
    }
    state.update({k: v for k, v in optional.items() if v is not None})
    return state


def stop_seconds(res: Container) -> int | None:
    """The stop timeout in the engine's unit (whole seconds), when the spec sets one."""
    return duration_ns(res.stop_timeout) // 1_000_000_000 if res.stop_timeout is not None else None


def _restart_parts(text: str) -> tuple[str, int]:
    name, _, retries = text.partition(":")
    return name, int(retries) if retries else 0


def run_state(inspect_state: Mapping[str, Any]) -> str:
    """``running`` or ``stopped``; ``paused`` and ``restarting`` are reported as they are."""
    status = str(inspect_state.get("Status", ""))
    if status in ("running", "paused", "restarting"):
        return status
    return "stopped"  # created, exited, dead, removing


def env_dict(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def is_managed(labels: Mapping[str, str] | None) -> bool:
    return (labels or {}).get(MANAGED_LABEL) == "true"


def _set_by_container(actual: Mapping[str, str], image: Mapping[str, str] | None, wanted: Mapping[str, Any],
                      secret_keys: set[str], hide_unwanted: bool) -> dict[str, Any]:
    """Keys the spec sets, plus keys the container has beyond its image's defaults
    (none when the image is unknown: then image defaults cannot be told apart).
    Values from a secret are Sensitive, and so are values the spec does not set
    when ``hide_unwanted`` (an env var that left the spec may have held one)."""
    out: dict[str, Any] = {}
    for key, value in actual.items():
        if key in wanted:
            out[key] = Sensitive(value) if key in secret_keys else value
        elif image is not None and image.get(key) != value:
            out[key] = Sensitive(value) if hide_unwanted else value
    return out


def observed_state(info: Mapping[str, Any], image_config: Mapping[str, Any] | None,
                   res: Container | None) -> State:
    """State of one managed container from its ``docker inspect`` data.

    ``image_config`` is the ``Config`` of the image it runs (for the defaults its
    env and labels inherit); ``res`` is its spec, or None for a prune candidate,
    which gets identity, image, state and mounts only.
    """
    config: Mapping[str, Any] = info.get("Config") or {}
    host: Mapping[str, Any] = info.get("HostConfig") or {}
    labels: dict[str, str] = dict(config.get("Labels") or {})
    volumes, binds = _parse_binds(host.get("Binds") or [])
    state: State = {
        "id": info.get("Id", ""),
        "image": config.get("Image", ""),
        "image_id": info.get("Image", ""),
        "state": run_state(info.get("State") or {}),
        "volumes": volumes,
        "binds": binds,
        "remove_volumes_on_prune": labels.get(REMOVE_VOLUMES_LABEL) == "true",
        "stop_timeout": config.get("StopTimeout"),
    }
    if res is None:
        return state
    secret_keys = {k for k, v in res.env.items() if isinstance(v, str) and "${secret:" in v}
    user_labels = {k: v for k, v in labels.items() if k not in OWN_LABELS}
    restart = host.get("RestartPolicy") or {}
    log = host.get("LogConfig") or {}
    state.update({
        "env": _set_by_container(env_dict(config.get("Env")),
                                 env_dict(image_config.get("Env")) if image_config is not None else None,
                                 res.env, secret_keys, hide_unwanted=True),
        "labels": _set_by_container(user_labels,
                                    (image_config.get("Labels") or {}) if image_config is not None else None,
                                    res.labels, set(), hide_unwanted=False),
        "ports": _parse_port_bindings(host.get("PortBindings") or {}),
        "restart": restart_text(restart.get("Name", ""), int(restart.get("MaximumRetryCount") or 0)),
        "spec_hash": labels.get(SPEC_HASH_LABEL, ""),
        "command": config.get("Cmd"),
        "entrypoint": config.get("Entrypoint"),
        "networks": sorted(((info.get("NetworkSettings") or {}).get("Networks") or {}).keys()),
        "healthcheck": _project_healthcheck(config.get("Healthcheck"), healthcheck_state(res)),
        "memory": int(host.get("Memory") or 0),
        "cpus": int(host.get("NanoCpus") or 0) / 1e9,
        "log": {"driver": log.get("Type", ""), "options": dict(log.get("Config") or {})},
        "user": config.get("User", ""),
        "health": _health(info.get("State") or {}),
    })
    return state


def _health(inspect_state: Mapping[str, Any]) -> str | None:
    """The health status while running; the engine keeps a stale "unhealthy" after a stop."""
    if inspect_state.get("Status") != "running":
        return None
    status = (inspect_state.get("Health") or {}).get("Status")
    return str(status) if status else None


def _project_healthcheck(observed: Mapping[str, Any] | None, wanted: Mapping[str, Any] | None) -> Any:
    if not observed:
        return None
    full = {"test": observed.get("Test") or [], "retries": observed.get("Retries") or 0,
            **{key: format_duration(int(observed.get(engine_key) or 0)) for key, engine_key in
               (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"))}}
    if wanted is None:
        return full
    return {k: v for k, v in full.items() if k in wanted}


def _parse_binds(entries: list[str]) -> tuple[list[str], list[str]]:
    """Split ``HostConfig.Binds`` (``src:dst[:opts]``) into named volumes and host paths."""
    volumes: list[str] = []
    binds: list[str] = []
    for entry in entries:
        parts = entry.split(":")
        if len(parts) < 2:
            continue
        source, target = parts[0], parts[1]
        options = parts[2].split(",") if len(parts) > 2 else []
        mode = "ro" if "ro" in options else "rw"
        (binds if source.startswith("/") else volumes).append(f"{source}:{target}:{mode}")
    return sorted(volumes), sorted(binds)


def _parse_port_bindings(bindings: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key, entries in bindings.items():
        port, _, proto = key.partition("/")
        for entry in entries or [{}]:
            out.append(PortSpec(int(port), proto or "tcp", entry.get("HostIp") or "",
                                entry.get("HostPort") or "").canonical())
    return sorted(out)


def create_parameters(res: Container, env: Mapping[str, str], spec_hash_value: str) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_container`` minus ``host_config`` and
    ``networking_config``; ``env`` holds the revealed values."""
    labels = {**res.labels, MANAGED_LABEL: "true", SPEC_HASH_LABEL: spec_hash_value}
    if res.remove_volumes_on_prune:
        labels[REMOVE_VOLUMES_LABEL] = "true"
    ports = [parse_port(p) for p in res.ports]
    params: dict[str, Any] = {
        "image": res.image,
        "name": res.name,
        "environment": dict(env),
        "labels": labels,
        "ports": sorted({(p.container_port, p.protocol) for p in ports}),
        "command": argv_of(res.command),
        "entrypoint": argv_of(res.entrypoint),
        "user": res.user,
        "healthcheck": _engine_healthcheck(res),
        "stop_timeout": stop_seconds(res),
        "detach": True,
    }
    return {k: v for k, v in params.items() if v is not None}


def _engine_healthcheck(res: Container) -> dict[str, Any] | None:
    """The healthcheck in the engine's units (nanoseconds), for create."""
    hc = res.healthcheck
    if hc is None:
        return None
    out: dict[str, Any] = {"test": hc.test_argv(), "retries": hc.retries}
    for key, value in (("interval", hc.interval), ("timeout", hc.timeout), ("start_period", hc.start_period)):
        out[key] = duration_ns(value) if value is not None else None
    return {k: v for k, v in out.items() if v is not None}


def host_config_parameters(res: Container) -> dict[str, Any]:
    """Keyword arguments for ``APIClient.create_host_config``."""
    volumes, binds = mount_specs(res)
    port_bindings: dict[str, list[dict[str, str]]] = {}
    for text in res.ports:
        p = parse_port(text)
        port_bindings.setdefault(p.key, []).append({"HostIp": p.host_ip, "HostPort": p.host_port})
    name, retries = _restart_parts(res.restart)
    params: dict[str, Any] = {
        "binds": [*volumes, *binds],
        "port_bindings": port_bindings,
        "restart_policy": {"Name": name, "MaximumRetryCount": retries} if name != "no" else None,
        # As `docker run --network a` does: the first network is the container's mode.
        "network_mode": sorted(res.networks)[0] if res.networks else None,
        "mem_limit": size_bytes(res.memory) if res.memory is not None else None,
        "nano_cpus": round(float(res.cpus) * 1e9) if res.cpus is not None else None,
        "log_config": ({"type": res.log.driver, "config": dict(res.log.options)}
                       if res.log is not None else None),
    }
    return {k: v for k, v in params.items() if v is not None}
