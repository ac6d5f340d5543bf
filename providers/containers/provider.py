"""Containers: Docker containers on the host's own engine, through the Docker SDK.

For SSH hosts the SDK talks to the engine over the run's one SSH connection
(``docker system dial-stdio`` channels, see ``reconciler.transport.docker_api``).

- Observing lists every container of the host in one call and inspects the ones
  named by the spec or the inventory. Only containers labelled
  ``io.reconciler.managed=true`` are the reconciler's: one of someone else's with a
  spec's name is reported as unmanaged and never touched, and creating ours fails
  with a message saying so.
- A change in any field the spec sets (or in the configuration hash label) replaces
  the container: stop, remove, create, start. The image is made available first,
  so a failed pull leaves the old container running. Named volumes and bind
  mounts are kept. A stopped container is started again (and a running one
  stopped, for ``state: stopped``) without a replace.
- With a healthcheck, apply waits until the container is healthy (``wait_healthy``),
  so what depends on it starts after; one that never gets there fails the change
  with its last log lines.
- Pruning removes owned containers only. Named volumes survive unless the container
  was created with ``remove_volumes_on_prune: true``, and even then only the
  volumes the reconciler created are deleted. Networks it created are kept.
- A plan never contacts a registry: ``pull: always`` pulls when a container is
  created or replaced. A new image loaded or pulled under the same tag by other
  means is seen (the container's image id differs) and replaces the container.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler.errors import ApplyError, TransportError
from reconciler.plan import Action, FieldChange
from reconciler.provider import ApplyItem, HostContext, Issue, Prerequisite, Provider, State
from reconciler.sensitive import KnownAfterApply, Sensitive

from ..common.checks import lazy_module
from .model import Container, duration_ns, validate_container
from .state import IN_PLACE_FIELDS, desired_state, is_managed, observed_state, spec_hash

if TYPE_CHECKING:
    import docker

    from . import docker_calls as engine
else:
    # The Docker SDK (and the requests stack under it) loads only when a run has containers.
    engine = lazy_module(__package__ + ".docker_calls")

__all__ = ["Container", "ContainersProvider"]

# ctx.scratch keys: what the last observe learnt, for desired() and unmanaged().
_IMAGE_IDS = "containers.image_ids"
_UNMANAGED = "containers.unmanaged"
_DEFAULT_STOP_TIMEOUT = 10


def _api(ctx: HostContext) -> docker.APIClient:
    return ctx.transport.docker_client().api


class ContainersProvider(Provider[Container]):
    kind = "containers"
    model = Container
    order = 30
    singleton = False
    description = "Docker containers on the host's own engine."

    def resource_id(self, resource: Container) -> str:
        return resource.name

    def validate(self, resource: Container) -> list[Issue]:
        return validate_container(resource)

    def prerequisites(self, resource: Container) -> list[Prerequisite]:
        """A Docker engine: Debian's docker.io or Docker's own docker-ce."""
        return [("packages:docker.io", "packages:docker-ce")]

    def requires(self, resource: Container) -> list[str]:
        """A bind-mounted path managed in the spec must exist first: the engine would
        otherwise create a missing source directory itself, owned by root."""
        sources = [bind.source.rstrip("/") for bind in resource.binds]
        return [f"{kind}:{source}" for source in sources for kind in ("directories", "files")]

    # ------------------------------------------------------------------ reading
    def desired(self, resource: Container, ctx: HostContext) -> State:
        image_ids: Mapping[str, str | None] = ctx.scratch.get(_IMAGE_IDS, {})
        return desired_state(resource, ctx.reveal, image_ids.get(resource.image))

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, Container]) -> dict[
            str, State | None]:
        if not ids:
            return {}
        try:
            api = _api(ctx)
            with engine.engine_errors("listing containers", ctx.name):
                summaries: list[dict[str, Any]] = api.containers(all=True)
        except TransportError:
            # A host without Docker has no containers; one whose engine is down is an error.
            if ctx.transport.run(["sh", "-c", "command -v docker"], check=False, timeout=30).ok:
                raise
            ctx.scratch[_UNMANAGED] = []
            return dict.fromkeys(ids)
        by_name = {name.lstrip("/"): s for s in summaries for name in s.get("Names") or []}
        ctx.scratch[_UNMANAGED] = [self._describe_unmanaged(s, resources) for s in summaries
                                   if not is_managed(s.get("Labels"))]
        image_configs: dict[str, dict[str, Any] | None] = {}

        def image_config(ref: str) -> dict[str, Any] | None:
            if ref not in image_configs:
                image_configs[ref] = engine.inspect_or_none(api.inspect_image, ref, f"inspecting image {ref}",
                                                            ctx.name)
            return image_configs[ref]

        spec_images = {res.image: image_config(res.image) for res in resources.values()}
        # Merged, not replaced: a re-observe after apply covers only the applied ids.
        ctx.scratch.setdefault(_IMAGE_IDS, {}).update(
            {ref: info["Id"] if info else None for ref, info in spec_images.items()})
        out: dict[str, State | None] = {}
        for rid in ids:
            summary = by_name.get(rid)
            if summary is None or not is_managed(summary.get("Labels")):
                out[rid] = None
                continue
            info = engine.inspect_or_none(api.inspect_container, summary["Id"], f"inspecting container {rid}",
                                          ctx.name)
            if info is None:  # removed since the list call
                out[rid] = None
                continue
            img = image_config(str(info.get("Image", "")))
            out[rid] = observed_state(info, (img or {}).get("Config"), resources.get(rid))
        return out

    @staticmethod
    def _describe_unmanaged(summary: Mapping[str, Any], resources: Mapping[str, Container]) -> str:
        name = next(iter(summary.get("Names") or ["?"])).lstrip("/")
        text = f"container {name} (image {summary.get('Image', '?')}, {summary.get('State', '?')})"
        if name in resources:
            text += (f": has the name of containers:{name} in the spec, which cannot be created "
                     "until it is renamed or removed")
        return text

    def unmanaged(self, ctx: HostContext, observed: Mapping[str, State | None]) -> list[str]:
        found: list[str] = ctx.scratch.get(_UNMANAGED, [])
        return list(found)

    # ------------------------------------------------------------------ comparing
    def action_for(self, fields: Sequence[FieldChange]) -> Action:
        if all(f.path.split(".", 1)[0] in IN_PLACE_FIELDS for f in fields):
            return Action.UPDATE
        return Action.REPLACE

    # ------------------------------------------------------------------ changing
    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        api = _api(ctx)
        change = item.change
        if change.action is Action.DELETE:
            self._prune(ctx, api, change.id, item.actual or {})
            return
        res = item.resource
        assert isinstance(res, Container) and item.desired is not None
        if change.action is Action.UPDATE and item.actual is not None:
            self._converge_run_state(ctx, api, res, item.actual)
            return
        # Create or replace. Everything that can fail without side effects comes first:
        # a name taken by someone else's container, a secret not there yet, the image.
        # If the image cannot be had, the old container is still there, running.
        replacing = item.actual is not None and bool(item.actual.get("id"))
        if not replacing:
            self._refuse_foreign(ctx, api, res.name)
        env = self._revealed_env(res, ctx)
        engine.ensure_image(api, res, ctx.name)
        if item.actual is not None and replacing:
            self._stop_and_remove(ctx, api, item.actual, change.id, anonymous_volumes=False)
        engine.ensure_networks(api, sorted(res.networks or []), ctx.name)
        engine.ensure_volumes(api, sorted({v.name for v in res.volumes}), ctx.name)
        container_id = engine.create_container(api, res, env, spec_hash(res), ctx.name)
        if res.state == "running":
            self._start(ctx, api, res, container_id)

    def _converge_run_state(self, ctx: HostContext, api: docker.APIClient, res: Container,
                            actual: State) -> None:
        container_id = str(actual["id"])
        if res.state == "stopped":
            engine.stop(api, container_id, res.name, self._stop_timeout(actual), ctx.name)
        elif actual.get("state") == "paused":
            engine.unpause(api, container_id, res.name, ctx.name)
            self._start(ctx, api, res, container_id, already_running=True)
        else:
            self._start(ctx, api, res, container_id, already_running=actual.get("state") == "running")

    def _start(self, ctx: HostContext, api: docker.APIClient, res: Container, container_id: str, *,
               already_running: bool = False) -> None:
        if not already_running:
            engine.start(api, container_id, res.name, ctx.name)
        if res.waits_healthy:
            engine.wait_healthy(api, container_id, res.name, duration_ns(res.wait_timeout) / 1e9, ctx.name)

    @staticmethod
    def _stop_timeout(actual: State) -> int:
        value = actual.get("stop_timeout")
        return int(value) if isinstance(value, int) else _DEFAULT_STOP_TIMEOUT

    def _stop_and_remove(self, ctx: HostContext, api: docker.APIClient, actual: State, name: str, *,
                         anonymous_volumes: bool) -> None:
        container_id = str(actual["id"])
        engine.stop(api, container_id, name, self._stop_timeout(actual), ctx.name)
        engine.remove(api, container_id, name, ctx.name, anonymous_volumes=anonymous_volumes)

    @staticmethod
    def _refuse_foreign(ctx: HostContext, api: docker.APIClient, name: str) -> None:
        info = engine.inspect_or_none(api.inspect_container, name, f"inspecting container {name}", ctx.name)
        if info is None:
            return
        labels = (info.get("Config") or {}).get("Labels")
        owner = "the reconciler (created by another run since this plan)" if is_managed(labels) else (
            "someone else: it has no io.reconciler.managed label, so it is left alone")
        raise ApplyError(f"a container named {name} already exists on {ctx.name}, owned by {owner}; "
                         "rename or remove it by hand, or give this container another name")

    @staticmethod
    def _revealed_env(res: Container, ctx: HostContext) -> dict[str, str]:
        env: dict[str, str] = {}
        for key, value in res.env.items():
            revealed = ctx.reveal(str(value))
            if isinstance(revealed, KnownAfterApply):
                raise ApplyError(f"env.{key} uses a secret that does not exist on {ctx.name} yet")
            env[key] = revealed.reveal() if isinstance(revealed, Sensitive) else revealed
        return env

    def _prune(self, ctx: HostContext, api: docker.APIClient, name: str, actual: State) -> None:
        if not actual.get("id"):
            return
        remove_volumes = bool(actual.get("remove_volumes_on_prune"))
        self._stop_and_remove(ctx, api, actual, name, anonymous_volumes=remove_volumes)
        if remove_volumes:
            names = sorted({str(v).split(":", 1)[0] for v in actual.get("volumes") or []})
            # Volumes the reconciler did not create (restored data, a shared volume) stay.
            engine.remove_owned_volumes(api, names, ctx.name)
