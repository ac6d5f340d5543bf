"""Services: systemd units rendered into /etc/systemd/system/NAME.service.

State compared per service: the unit file's content (hash), the environment (per
key; secret values only as digests), whether it is enabled at boot (systemd's
``UnitFileState``), whether it runs (``ActiveState``), files it reads at start that
changed after its main process started, and a pending daemon-reload.

Apply, per run of service changes:
* ``begin``: render every changed unit, check them all with ``systemd-analyze verify``
  on the host in one command (a unit that fails is never installed; its change fails
  quoting systemd's message), write environment files (0600) and units atomically,
  then enable/disable them all and ONE ``daemon-reload``, in one command.
* ``apply``: restart when the unit, its environment, a file it reads or a
  ``restart_on`` resource changed, when it is not running or when its last health
  check failed; then wait for its health check (an unhealthy service fails the change
  with the journal tail). Stop a service the spec wants stopped. A prune stops,
  disables and deletes.

A failed health check is not forgotten: a marker ``/var/lib/reconciler/services/NAME.unhealthy``
makes ``health`` observe as ``unhealthy`` (desired: ``healthy``), so the next plan
shows the service as pending and the next apply restarts it and checks again; the
marker goes when a check passes.
* ``finish``: one ``daemon-reload`` after prunes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.errors import ApplyError, CommandFailed
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Prerequisite, Provider, State
from reconciler.sensitive import KNOWN_AFTER_APPLY, KnownAfterApply, Sensitive
from reconciler.transport.ops import FileWrite

from ..common.exposure import measure
from .hardening import failure_hint
from .health import journal_tail, wait_healthy
from .model import ENV_DIR, HEALTH_DIR, UNIT_DIR, UNIT_NAME, Service, unit_reference, validate_service
from .observe import HEALTHY, UNHEALTHY, observe_argv, parse_observation, service_state, watched_files
from .render import digest, env_text, render_env_file, render_unit
from .systemd import (
    ENABLE_SCRIPT,
    PRUNE_SCRIPT,
    STOP_SCRIPT,
    VERIFY_SCRIPT,
    failures,
    parse_unit_results,
    parse_verify_output,
    unit_archive,
)

__all__ = ["Service", "ServicesProvider"]

SCRATCH_KEY = "services"
EXPOSURE_KEY = "services.exposure"


@dataclass
class _Write:
    """Files ``begin`` writes for one service (None: leave as is)."""

    service: Service
    unit_text: str | None = None
    env_text: str | None = None
    remove_env: bool = False


@dataclass
class _RunState:
    """Per host and run (kept in ``ctx.scratch``): what ``begin`` did for each service."""

    refused: dict[str, str] = field(default_factory=dict)   # name -> why its change failed in begin
    rewritten: set[str] = field(default_factory=set)        # unit or environment written
    reload_after_prune: bool = False


def _run_state(ctx: HostContext) -> _RunState:
    state = ctx.scratch.get(SCRATCH_KEY)
    if not isinstance(state, _RunState):
        state = ctx.scratch[SCRATCH_KEY] = _RunState()
    return state


class ServicesProvider(Provider[Service]):
    kind = "services"
    model = Service
    order = 40
    singleton = False
    description = "systemd services rendered into /etc/systemd/system."

    def resource_id(self, resource: Service) -> str:
        return resource.name

    def validate(self, resource: Service) -> list[Issue]:
        return validate_service(resource)

    def prerequisites(self, resource: Service) -> list[Prerequisite]:
        """curl runs an http health check on the host."""
        return ["packages:curl"] if resource.health is not None and resource.health.http else []

    def requires(self, resource: Service) -> list[str]:
        """Its account, its directories and the other services it names in after /
        requires / wants are applied first (addresses not in the spec are ignored)."""
        deps = [f"users:{a}" for a in (resource.user, resource.group) if a]
        if resource.working_directory:
            deps.append(f"directories:{resource.working_directory.rstrip('/')}")
        deps += [f"directories:{p.lstrip('-').rstrip('/')}" for p in resource.hardening.read_write_paths]
        for ref in [*resource.after, *resource.requires, *resource.wants]:
            unit = unit_reference(ref)
            if unit.endswith(".service") and UNIT_NAME.match(unit):
                deps.append(f"services:{unit.removesuffix('.service')}")
        return list(dict.fromkeys(d for d in deps if d != f"services:{resource.name}"))

    def triggers(self, resource: Service) -> list[str]:
        """restart_on, plus the files it runs and reads: its environment_file and its
        program when a files: resource installs them."""
        found = list(resource.restart_on)
        if resource.environment_file:
            found.append(f"files:{resource.environment_file}")
        if isinstance(resource.exec, list) and resource.exec and resource.exec[0].startswith("/"):
            found.append(f"files:{resource.exec[0]}")
        return list(dict.fromkeys(found))

    # ------------------------------------------------------------------ reading
    def _environment(self, resource: Service, ctx: HostContext) -> dict[
            str, str | Sensitive | KnownAfterApply]:
        return {k: ctx.reveal(env_text(v)) if isinstance(v, str) else env_text(v)
                for k, v in resource.environment.items()}

    def desired(self, resource: Service, ctx: HostContext) -> State:
        environment: dict[str, object] = {}
        for key, value in self._environment(resource, ctx).items():
            if isinstance(value, KnownAfterApply):
                environment[key] = KNOWN_AFTER_APPLY
            elif isinstance(value, Sensitive):
                environment[key] = Sensitive(digest(value.reveal()))
            else:
                environment[key] = value
        has_install = resource.unit is None or "[Install]" in resource.unit
        state: State = {
            "unit": digest(render_unit(resource)),
            "environment": environment,
            "enabled": "enabled" if resource.enabled else "disabled" if has_install else "static",
            "active": "active" if resource.state == "running" else "inactive",
            "need_daemon_reload": False,
        }
        if resource.state == "running":
            state["changed_since_start"] = []
            if resource.health is not None:
                state["health"] = HEALTHY
        after = _exposure(ctx).get(resource.name, {}).get("after")
        if after is not None:
            state["exposure"] = after
        return state

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, Service]) -> dict[
            str, State | None]:
        if not ids:
            return {}
        extra = sorted({p for r in resources.values() for p in watched_files(r)})
        result = ctx.transport.run(observe_argv(ids, extra))
        obs = parse_observation(result.out)
        states = {name: service_state(name, obs, resources.get(name)) for name in ids}
        self._score_planned_units(ctx, ids, resources, states)
        return states

    @staticmethod
    def _score_planned_units(ctx: HostContext, ids: Sequence[str], resources: Mapping[str, Service],
                             states: dict[str, State | None]) -> None:
        """The ``systemd-analyze security`` exposure of every unit whose file will change:
        as loaded now (``exposure`` of the actual state) and as rendered (of the desired
        state), so the plan shows ``exposure = "5.4 MEDIUM" -> "1.1 OK"``. Units whose file
        matches cost nothing: a no-op plan runs no extra command."""
        scores = _exposure(ctx)
        for name in ids:
            scores.pop(name, None)
        planned = {f"{name}.service": render_unit(res) for name, res in resources.items()
                   if name in ids and (states.get(name) or {}).get("unit") != digest(render_unit(res))}
        if not planned:
            return
        live = [unit for unit in planned if states.get(unit.removesuffix(".service")) is not None]
        measured = measure(ctx.transport, units=planned, live=live)
        for unit in planned:
            name = unit.removesuffix(".service")
            scores[name] = {"before": measured.before.get(unit), "after": measured.after.get(unit)}
            state = states.get(name)
            if state is not None and measured.before.get(unit) is not None:
                state["exposure"] = measured.before[unit]

    # --- plan display: the unit as a diff, bookkeeping fields in words -----------------
    text_fields = frozenset({"unit"})
    internal_fields = {
        "need_daemon_reload": "systemd has not loaded the unit file on disk yet: a daemon-reload is due",
        "changed_since_start": "restart: {old} changed after the service started",
        "drop_ins": "drop-ins change this unit: {old}",
    }

    def desired_text(self, resource: Service, field_name: str, ctx: HostContext) -> str | None:
        return render_unit(resource) if field_name == "unit" else None

    def text_path(self, rid: str, field_name: str, actual: State) -> str | None:
        return f"{UNIT_DIR}/{rid}.service" if field_name == "unit" else None

    def unmanaged(self, ctx: HostContext, observed: Mapping[str, State | None]) -> list[str]:
        """Drop-ins (``systemctl edit``) change a managed unit behind the spec's back;
        they are shown, never removed."""
        return [f"drop-in {path} (changes services:{name})"
                for name, state in sorted(observed.items()) if state
                for path in state.get("drop_ins", [])]

    # ------------------------------------------------------------------ changing
    def begin(self, ctx: HostContext, items: Sequence[ApplyItem]) -> None:
        """Verify, write and enable every changed service, then ONE daemon-reload. A
        service that fails here is recorded, and its ``apply`` raises the reason."""
        run = _run_state(ctx)
        run.refused.clear()
        run.rewritten.clear()
        live = [i for i in items if i.change.action is not Action.DELETE and isinstance(i.resource, Service)]
        writes = [w for w in (self._pending_write(ctx, item, run) for item in live) if w is not None]
        units = {w.service.unit_name: w.unit_text for w in writes if w.unit_text is not None}
        if units:
            result = ctx.transport.run_script(VERIFY_SCRIPT, list(units), stdin=unit_archive(units))
            run.refused.update({name: f"{name}.service was not installed: {why}"
                                for name, why in parse_verify_output(result.out, units).items()})
        # Every unit and environment file in one request; the environment goes first: the
        # new unit may already point at it. A file that fails refuses its own service only.
        files: list[FileWrite] = []
        owners: list[str] = []
        stale_env: list[tuple[str, str]] = []
        for w in writes:
            if w.service.name in run.refused:
                continue
            if w.remove_env:
                stale_env.append((w.service.name, w.service.env_path))
            elif w.env_text is not None:
                files.append(FileWrite(w.service.env_path, w.env_text.encode(), "0600"))
                owners.append(w.service.name)
            if w.unit_text is not None:
                files.append(FileWrite(w.service.unit_path, w.unit_text.encode(), "0644"))
                owners.append(w.service.name)
        write_errors = [*zip([n for n, _ in stale_env], ctx.transport.remove([p for _, p in stale_env]),
                             strict=True),
                        *zip(owners, ctx.transport.write_files(files), strict=True)]
        for name, error in write_errors:
            if error is not None and name not in run.refused:
                run.refused[name] = f"could not install the unit: {error}"
        run.rewritten.update(w.service.name for w in writes if w.service.name not in run.refused)
        reload = any(w.unit_text is not None and w.service.name in run.rewritten for w in writes) or any(
            (i.actual or {}).get("need_daemon_reload") for i in live)
        pairs = [arg for i in live if i.change.id not in run.refused
                 for arg in _enable_action(i.change.id, i.actual, i.desired)]
        # systemd caches UnitFileState until a reload, so enabling needs one as well.
        if pairs or reload:
            result = ctx.transport.run_script(ENABLE_SCRIPT, ["reload", *pairs])
            run.refused.update({name: f"could not enable or disable {name}.service:\n{why}"
                                for name, why in failures(parse_unit_results(result.out)).items()})

    def _pending_write(self, ctx: HostContext, item: ApplyItem, run: _RunState) -> _Write | None:
        """What ``begin`` must write for one change (None: nothing)."""
        if item.change.action is Action.DELETE or not isinstance(item.resource, Service):
            return None
        service, actual = item.resource, item.actual or {}
        values = self._environment(service, ctx)
        if any(isinstance(v, KnownAfterApply) for v in values.values()):
            run.refused[service.name] = (f"{service.unit_name} was not installed: its environment uses "
                                         "a secret that does not exist on the host")
            return None
        unit_text = render_unit(service)
        write = _Write(service)
        if actual.get("unit") != digest(unit_text):
            write.unit_text = unit_text
        if item.desired is not None and actual.get("environment") != item.desired["environment"]:
            if values:
                write.env_text = render_env_file(service.name, {
                    k: v.reveal() if isinstance(v, Sensitive) else str(v) for k, v in values.items()})
            else:
                write.remove_env = True
        changed = write.unit_text is not None or write.env_text is not None or write.remove_env
        return write if changed else None

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        """Start, restart or stop one service (``begin`` installed and enabled it), then
        wait until it is healthy. A prune stops, disables and deletes."""
        run = _run_state(ctx)
        name = item.change.id
        if item.change.action is Action.DELETE:
            ctx.transport.run_script(PRUNE_SCRIPT, [f"{name}.service", f"{UNIT_DIR}/{name}.service",
                                                    f"{ENV_DIR}/{name}.env",
                                                    f"{HEALTH_DIR}/{name}.unhealthy"])
            run.reload_after_prune = True
            return
        assert isinstance(item.resource, Service)
        service, actual = item.resource, item.actual or {}
        if name in run.refused:
            raise ApplyError(run.refused[name])
        if service.state == "stopped":
            if actual.get("active") != "inactive":
                self._control(ctx, service, "stop",
                              ["sh", "-c", STOP_SCRIPT, "reconciler", service.unit_name])
            return
        # Restart for anything the running process has not seen; a unit that is not
        # active (stopped, failed, in a restart loop) is (re)started all the same.
        was_unhealthy = actual.get("health") == UNHEALTHY
        restart = (name in run.rewritten or actual.get("active") != "active" or was_unhealthy
                   or bool(actual.get("changed_since_start")) or bool(actual.get("need_daemon_reload"))
                   or any(t in ctx.applied for t in self.triggers(service)))
        if restart:
            try:
                self._control(ctx, service, "start", ["systemctl", "restart", "--", service.unit_name])
                try:
                    wait_healthy(ctx, service)
                except ApplyError as exc:
                    # Remembered on the host: the next plan shows the service as unhealthy
                    # and the next apply restarts and checks it again, until it passes.
                    ctx.transport.write_file(service.unhealthy_marker,
                                             (str(exc).splitlines()[0] + "\n").encode(), mode="0600")
                    raise
            except ApplyError as exc:
                # Name the sandbox directive the journal points at: a program that breaks
                # under a profile it never asked for should say why.
                hint = failure_hint(service.hardening, str(exc)) if service.unit is None else ""
                if not hint:
                    raise
                raise ApplyError(f"{exc}\n{hint}") from exc
            if was_unhealthy:
                ctx.transport.run(["rm", "-f", "--", service.unhealthy_marker])

    @staticmethod
    def _control(ctx: HostContext, service: Service, verb: str, argv: list[str]) -> None:
        try:
            ctx.transport.run(argv)
        except CommandFailed as exc:
            raise ApplyError(f"could not {verb} {service.unit_name}: {exc.stderr.strip() or exc}\n"
                             + journal_tail(ctx, service)) from exc

    def finish(self, ctx: HostContext, items: Sequence[ApplyItem]) -> None:
        run = _run_state(ctx)
        if run.reload_after_prune:
            ctx.transport.run(["systemctl", "daemon-reload"])
            run.reload_after_prune = False


def _exposure(ctx: HostContext) -> dict[str, dict[str, str | None]]:
    """Scores measured by the last observe, per service name (kept in ``ctx.scratch``)."""
    scores = ctx.scratch.get(EXPOSURE_KEY)
    if not isinstance(scores, dict):
        scores = ctx.scratch[EXPOSURE_KEY] = {}
    return scores


def _enable_action(name: str, actual: State | None, desired: State | None) -> list[str]:
    """``[UNIT, ACTION]`` for ``ENABLE_SCRIPT`` when the boot-time state must change."""
    have, want = (actual or {}).get("enabled"), (desired or {}).get("enabled")
    if have == want or want not in ("enabled", "disabled"):
        return []
    if want == "enabled":
        return [f"{name}.service", "enable"]
    return [f"{name}.service", "disable-runtime" if have == "enabled-runtime" else "disable"]
