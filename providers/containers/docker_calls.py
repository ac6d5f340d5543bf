"""What the ``containers`` provider asks of a host's Docker engine, through the SDK's
low-level ``APIClient`` (one HTTP request per call, over the transport's SSH
connection for remote hosts).

Every SDK, HTTP and SSH error is translated here: ``ApplyError`` with the engine's
own message for a refused request, ``TransportError`` when the engine cannot be
reached. Nothing above this module sees a docker or requests exception.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import docker
import docker.errors
import paramiko
import requests
from docker.utils import parse_repository_tag

from reconciler.errors import ApplyError, ReconcilerError, TransportError

from .model import Container
from .state import MANAGED_LABEL, create_parameters, host_config_parameters

LOG_TAIL_LINES = 20
_OWNED = {MANAGED_LABEL: "true"}


class EngineRefused(ApplyError):
    """The engine answered with an error (bad request, conflict, missing object)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def engine_errors(what: str, host: str) -> Iterator[None]:
    """Run SDK calls, turning their exceptions into ours; ``what`` says what was being done."""
    try:
        yield
    except docker.errors.APIError as exc:
        detail = exc.explanation or str(exc)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise EngineRefused(f"{what} on {host}: {str(detail).strip()}", exc.status_code) from exc
    except (requests.exceptions.RequestException, paramiko.SSHException, OSError, EOFError) as exc:
        raise TransportError(f"{what} on {host}: lost the Docker engine connection: {exc}") from exc
    except docker.errors.DockerException as exc:
        raise ApplyError(f"{what} on {host}: {exc}") from exc


def _is_not_found(exc: EngineRefused) -> bool:
    return exc.status == 404


def inspect_or_none(fn: Any, ref: str, what: str, host: str) -> dict[str, Any] | None:
    """``fn(ref)`` (an ``inspect_*`` call), or None when the engine has no such object."""
    try:
        with engine_errors(what, host):
            result: dict[str, Any] = fn(ref)
            return result
    except EngineRefused as exc:
        if _is_not_found(exc):
            return None
        raise


# ---------------------------------------------------------------------------- images

def ensure_image(api: docker.APIClient, res: Container, host: str) -> str:
    """The id of ``res.image`` on the host after honouring ``res.pull``."""
    present = inspect_or_none(api.inspect_image, res.image, f"inspecting image {res.image}", host)
    if present is not None and res.pull != "always":
        return str(present["Id"])
    if present is None and res.pull == "never":
        raise ApplyError(f"image {res.image} is not on host {host} and pull is never; "
                         "load it with docker load")
    pull_image(api, res.image, host)
    pulled = inspect_or_none(api.inspect_image, res.image, f"inspecting image {res.image}", host)
    if pulled is None:
        raise ApplyError(f"image {res.image} is still not on host {host} after pulling it")
    return str(pulled["Id"])


def pull_image(api: docker.APIClient, ref: str, host: str) -> None:
    """Pull ``ref``. The engine reports most pull failures inside the progress stream
    with HTTP 200, so the stream is read to its end (which also frees its channel)
    and checked for errors."""
    repository, tag = parse_repository_tag(ref)
    errors: list[str] = []
    with engine_errors(f"pulling image {ref}", host):
        for event in api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if isinstance(event, dict) and event.get("error"):
                errors.append(str(event["error"]).strip())
    if errors:
        raise ApplyError(f"pulling image {ref} on {host} failed: {errors[0]}")


# ---------------------------------------------------------------------------- networks, volumes

def ensure_networks(api: docker.APIClient, names: list[str], host: str) -> None:
    """Create the user networks that do not exist yet (bridge, labelled as ours)."""
    for name in names:
        if inspect_or_none(api.inspect_network, name, f"inspecting network {name}", host) is None:
            with engine_errors(f"creating network {name}", host):
                api.create_network(name, driver="bridge", labels=dict(_OWNED))


def ensure_volumes(api: docker.APIClient, names: list[str], host: str) -> None:
    """Create missing named volumes, labelled as ours, so a prune can tell them from a user's."""
    for name in names:
        if inspect_or_none(api.inspect_volume, name, f"inspecting volume {name}", host) is None:
            with engine_errors(f"creating volume {name}", host):
                api.create_volume(name, labels=dict(_OWNED))


def remove_owned_volumes(api: docker.APIClient, names: list[str], host: str) -> list[str]:
    """Remove the named volumes the reconciler created; returns the ones it left alone."""
    kept: list[str] = []
    for name in names:
        info = inspect_or_none(api.inspect_volume, name, f"inspecting volume {name}", host)
        if info is None:
            continue
        if (info.get("Labels") or {}).get(MANAGED_LABEL) != "true":
            kept.append(name)
            continue
        with engine_errors(f"removing volume {name}", host):
            api.remove_volume(name)
    return kept


# ---------------------------------------------------------------------------- containers

def create_container(api: docker.APIClient, res: Container, env: Mapping[str, str], config_hash: str,
                     host: str) -> str:
    """Create (not start) the container; returns its id. Attaches every network in the spec."""
    networks = sorted(res.networks or [])
    with engine_errors(f"creating container {res.name}", host):
        host_config = api.create_host_config(**host_config_parameters(res))
        # The stubs type the argument as one EndpointConfig; the SDK wants {network: config}.
        networking = (api.create_networking_config({networks[0]: api.create_endpoint_config()})  # type: ignore[arg-type]
                      if networks else None)
        created = api.create_container(**create_parameters(res, env, config_hash), host_config=host_config,
                                       networking_config=networking)
        container_id = str(created["Id"])
    for name in networks[1:]:
        with engine_errors(f"connecting container {res.name} to network {name}", host):
            api.connect_container_to_network(container_id, name)
    return container_id


def start(api: docker.APIClient, container_id: str, name: str, host: str) -> None:
    with engine_errors(f"starting container {name}", host):
        api.start(container_id)


def unpause(api: docker.APIClient, container_id: str, name: str, host: str) -> None:
    with engine_errors(f"unpausing container {name}", host):
        api.unpause(container_id)


def stop(api: docker.APIClient, container_id: str, name: str, timeout: int, host: str) -> None:
    """Stop (SIGTERM, then SIGKILL after ``timeout`` s); an absent container is already stopped."""
    try:
        with engine_errors(f"stopping container {name}", host):
            api.stop(container_id, timeout=timeout)
    except EngineRefused as exc:
        if not _is_not_found(exc):
            raise


def remove(api: docker.APIClient, container_id: str, name: str, host: str, *,
           anonymous_volumes: bool) -> None:
    """Remove a stopped container. Named volumes and bind-mounted data are never touched
    here; ``anonymous_volumes`` also drops the unnamed ones the image declared."""
    try:
        with engine_errors(f"removing container {name}", host):
            api.remove_container(container_id, v=anonymous_volumes)
    except EngineRefused as exc:
        if not _is_not_found(exc):
            raise


def log_tail(api: docker.APIClient, container_id: str, host: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of the container's output, for error messages (best effort)."""
    try:
        with engine_errors("reading container logs", host):
            raw = api.logs(container_id, stdout=True, stderr=True, tail=lines)
    except ReconcilerError as exc:
        return f"(logs unavailable: {exc})"
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.rstrip("\n") or "(no output)"


def wait_healthy(api: docker.APIClient, container_id: str, name: str, timeout_s: float, host: str) -> None:
    """Poll until the engine reports the container healthy. Fails as soon as it is
    reported unhealthy (as ``docker compose`` does for a dependency: start_period and
    retries are the knobs for patience) or stops without restarting, and after
    ``timeout_s``; always with its last log lines."""
    deadline = time.monotonic() + timeout_s
    delay = 0.25
    while True:
        with engine_errors(f"inspecting container {name}", host):
            info = api.inspect_container(container_id)
        state = info.get("State") or {}
        health = state.get("Health") or {}
        status = health.get("Status")
        if status == "healthy":
            return
        if not state.get("Running") and not state.get("Restarting"):
            raise ApplyError(f"container {name} stopped (exit code {state.get('ExitCode')}) before it became "
                             f"healthy; its last log lines:\n{log_tail(api, container_id, host)}")
        if status == "unhealthy" or time.monotonic() >= deadline:
            probes = health.get("Log") or []
            last = str(probes[-1].get("Output", "")).strip() if probes else ""
            verdict = "is unhealthy" if status == "unhealthy" else f"is not healthy after {timeout_s:g} s"
            raise ApplyError(
                f"container {name} {verdict} (health: {status or 'none'}"
                + (f"; last check said: {last}" if last else "")
                + f"); its last log lines:\n{log_tail(api, container_id, host)}")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 2.0)
