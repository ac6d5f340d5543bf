"""Services: systemd units rendered into /etc/systemd/system/NAME.service.

State compared per service: the unit file's content (hash), the environment (per
key; secret values only as digests), whether it is enabled at boot (systemd's
``UnitFileState``), whether it runs (``ActiveState``), files it reads at start that
changed after its main process started, and a pending daemon-reload.

Apply, per run of service changes:
* ``begin``: render every changed unit, check them all with ``systemd-analyze verify``
  on the host in one command (a unit that fails is never installed; its change fails
  quoting systemd's message), write environment files (0600) and units atomically,
  then ONE ``daemon-reload``.
* ``apply``: unmask/enable/disable, then restart when the unit, its environment, a
  file it reads or a ``restart_on`` resource changed (or start it when it is not
  running), then wait for its health check; an unhealthy service fails the change
  with the journal tail. A prune stops, disables and deletes.
* ``finish``: one ``daemon-reload`` after prunes.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from providers.services_health import journal_tail, wait_healthy
from providers.services_model import UNIT_NAME, Service, unit_reference, validate_service
from providers.services_observe import observe_argv, parse_observation, service_state, watched_files
from providers.services_render import digest, env_text, render_env_file, render_unit
from reconciler.errors import ApplyError, CommandFailed
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Provider, State
from reconciler.sensitive import KNOWN_AFTER_APPLY, KnownAfterApply, Sensitive

__all__ = ["Service", "ServicesProvider"]

# Unit files arrive as a tar archive on stdin (no unit text in argv). Each is checked
# in the same temporary directory, so units that require each other find each other;
# verify adds the unit's directory to its search path. --recursive-errors=one fails on
# warnings (unknown keys, bad values) in the unit and its direct dependencies (a
# Requires= of a missing unit), not on noise deeper down; --man=no because servers
# rarely have man pages for Documentation= to point at.
VERIFY_SCRIPT = r"""
set -eu
command -v systemd-analyze >/dev/null 2>&1 || {
  echo "systemd-analyze is not installed on the host (package systemd)" >&2; exit 127; }
dir=$(mktemp -d /tmp/reconciler-verify.XXXXXXXX)
trap 'rm -rf -- "$dir"' EXIT
tar -x -C "$dir" -f -
printf '@@dir %s\n' "$dir"
for unit in "$@"; do
  rc=0
  out=$(cd / && systemd-analyze verify --recursive-errors=one --man=no "$dir/$unit" 2>&1) || rc=$?
  printf '@@unit %s %s\n%s\n' "$rc" "$unit" "$out"
done
"""

# Enable/disable and start/stop in one command. $2: enable | disable | keep;
# $3: restart | stop | keep; $4: "masked" when the unit is masked; $5: "runtime" when
# it is enabled-runtime (a /run link that `disable` alone would leave behind).
CONTROL_SCRIPT = r"""
set -eu
unit=$1
[ "$4" = masked ] && systemctl unmask -- "$unit"
case "$2" in
  enable) systemctl enable -- "$unit" ;;
  disable) [ "$5" = runtime ] && systemctl disable --runtime -- "$unit"; systemctl disable -- "$unit" ;;
esac
case "$3" in
  restart) systemctl restart -- "$unit" ;;
  stop) systemctl stop -- "$unit"; systemctl reset-failed -- "$unit" 2>/dev/null || true ;;
esac
"""

PRUNE_SCRIPT = r"""
set -eu
unit=$1
systemctl disable --now -- "$unit"
rm -f -- "$2" "$3"
systemctl reset-failed -- "$unit" 2>/dev/null || true
"""

SCRATCH_KEY = "services"


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

    refused: dict[str, str] = field(default_factory=dict)   # name -> why it was not installed
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
        return state

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, Service]) -> dict[
            str, State | None]:
        if not ids:
            return {}
        extra = sorted({p for r in resources.values() for p in watched_files(r)})
        result = ctx.transport.run(observe_argv(ids, extra))
        obs = parse_observation(result.out)
        return {name: service_state(name, obs, resources.get(name)) for name in ids}

    def unmanaged(self, ctx: HostContext, observed: Mapping[str, State | None]) -> list[str]:
        """Drop-ins (``systemctl edit``) change a managed unit behind the spec's back;
        they are shown, never removed."""
        return [f"drop-in {path} (changes services:{name})"
                for name, state in sorted(observed.items()) if state
                for path in state.get("drop_ins", [])]

    # ------------------------------------------------------------------ changing
    def begin(self, ctx: HostContext, items: Sequence[ApplyItem]) -> None:
        run = _run_state(ctx)
        writes = [w for w in (self._pending_write(ctx, item, run) for item in items) if w is not None]
        refused = self._verify_units(ctx, [(w.service, w.unit_text) for w in writes
                                           if w.unit_text is not None])
        run.refused.update(refused)
        for w in writes:
            if w.service.name in refused:
                continue
            # The environment goes first: the new unit may already point at it.
            if w.remove_env:
                ctx.transport.run(["rm", "-f", "--", w.service.env_path])
            elif w.env_text is not None:
                ctx.transport.write_file(w.service.env_path, w.env_text.encode(), mode="0600")
            if w.unit_text is not None:
                ctx.transport.write_file(w.service.unit_path, w.unit_text.encode(), mode="0644")
            run.rewritten.add(w.service.name)
        stale = any((i.actual or {}).get("need_daemon_reload") for i in items
                    if i.change.action is not Action.DELETE)
        if stale or any(w.unit_text is not None and w.service.name not in refused for w in writes):
            ctx.transport.run(["systemctl", "daemon-reload"])

    def _pending_write(self, ctx: HostContext, item: ApplyItem, run: _RunState) -> _Write | None:
        """What ``begin`` must write for one change (None: nothing)."""
        if item.change.action is Action.DELETE or not isinstance(item.resource, Service):
            return None
        service, actual = item.resource, item.actual or {}
        values = self._environment(service, ctx)
        if any(isinstance(v, KnownAfterApply) for v in values.values()):
            run.refused[service.name] = "its environment uses a secret that does not exist on the host"
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

    def _verify_units(self, ctx: HostContext, units: list[tuple[Service, str]]) -> dict[str, str]:
        """``systemd-analyze verify`` every unit on the host, in one command. Returns
        name -> refusal message for the units it rejects."""
        if not units:
            return {}
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for service, text in units:
                data = text.encode()
                info = tarfile.TarInfo(service.unit_name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        result = ctx.transport.run_script(VERIFY_SCRIPT, [s.unit_name for s, _ in units],
                                          stdin=archive.getvalue())
        return parse_verify_output(result.out, {s.unit_name: text for s, text in units})

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        run = _run_state(ctx)
        name = item.change.id
        if item.change.action is Action.DELETE:
            unit = f"{name}.service"
            ctx.transport.run_script(PRUNE_SCRIPT, [unit, f"/etc/systemd/system/{unit}",
                                                    f"/etc/reconciler/services/{name}.env"])
            run.reload_after_prune = True
            return
        assert isinstance(item.resource, Service) and item.desired is not None
        service, actual = item.resource, item.actual or {}
        if name in run.refused:
            raise ApplyError(f"{service.unit_name} was not installed: {run.refused[name]}")
        enable = "keep"
        if actual.get("enabled") != item.desired["enabled"]:
            enable = {"enabled": "enable", "disabled": "disable"}.get(item.desired["enabled"], "keep")
        masked = "masked" if str(actual.get("enabled", "")).startswith("masked") else ""
        runtime = "runtime" if actual.get("enabled") == "enabled-runtime" else ""
        started = False
        if service.state == "running":
            restart = (name in run.rewritten or bool(actual.get("changed_since_start"))
                       or bool(actual.get("need_daemon_reload")) or actual.get("active") != "active"
                       or any(t in ctx.applied for t in self.triggers(service)))
            action = "restart" if restart else "keep"
            started = restart
        else:
            action = "stop" if actual.get("active") != "inactive" else "keep"
        try:
            ctx.transport.run_script(CONTROL_SCRIPT, [service.unit_name, enable, action, masked, runtime])
        except CommandFailed as exc:
            verb = {"restart": "start", "stop": "stop"}.get(action, "enable")
            raise ApplyError(f"could not {verb} {service.unit_name}: {exc.stderr.strip() or exc}\n"
                             + journal_tail(ctx, service)) from exc
        if started:
            wait_healthy(ctx, service)

    def finish(self, ctx: HostContext, items: Sequence[ApplyItem]) -> None:
        run = _run_state(ctx)
        if run.reload_after_prune:
            ctx.transport.run(["systemctl", "daemon-reload"])
            run.reload_after_prune = False
        # A later run of service changes (another group) starts from a clean slate.
        run.refused.clear()
        run.rewritten.clear()


def parse_verify_output(text: str, units: Mapping[str, str] | None = None) -> dict[str, str]:
    """``VERIFY_SCRIPT`` output -> {service name: systemd-analyze's complaint} for each
    unit it rejected. The temporary directory is cut from the messages, and a message
    that points at a line of a unit in ``units`` (unit name -> text) quotes that line:
    the user wrote the spec, not the rendered file the line number counts in."""
    tmpdir = ""
    results: dict[str, tuple[int, list[str]]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@dir "):
            tmpdir = line[len("@@dir "):].rstrip("/") + "/"
        elif line.startswith("@@unit "):
            status, _, unit = line[len("@@unit "):].partition(" ")
            current = []
            results[unit] = (int(status) if status.isdigit() else 1, current)
        elif current is not None and line.strip():
            current.append(line.replace(tmpdir, "") if tmpdir else line)
            quoted = _quote_line(current[-1], units or {})
            if quoted:
                current.append(quoted)
    refused: dict[str, str] = {}
    for unit, (rc, lines) in results.items():
        if rc != 0:
            shown = "\n".join("  " + line for line in lines) or f"  (exit status {rc}, no message)"
            refused[unit.removesuffix(".service")] = f"systemd-analyze verify refused it:\n{shown}"
    return refused


def _quote_line(message: str, units: Mapping[str, str]) -> str:
    """``app.service:12: Unknown key...`` -> ``    > BogusKey=1`` (line 12 of app.service)."""
    match = re.match(r"^([^:\s]+\.service):(\d+): ", message)
    if match is None or match.group(1) not in units:
        return ""
    lines = units[match.group(1)].splitlines()
    number = int(match.group(2))
    return f"  > {lines[number - 1]}" if 0 < number <= len(lines) else ""
