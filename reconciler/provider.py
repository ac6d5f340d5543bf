"""The provider contract: one resource kind per provider, found through entry points.

A provider MUST define ``kind``, ``model``, ``resource_id``, ``desired``,
``observe`` and ``apply``; it MAY override ``validate``, ``requires``,
``prerequisites``, ``compare``, ``action_for``, ``begin``, ``finish``,
``unmanaged``, ``secret_values``, ``release_reason``, ``published`` (with
``published_fields``), ``refusal`` and ``job_results``, and declare
``text_fields`` (with ``desired_text`` and ``text_path``) and ``internal_fields``
so plans show texts as diffs and bookkeeping fields in words. Providers return
data and raise ``ApplyError`` / ``CommandFailed``; they never print.

The engine calls, per host:
1. ``observe(ctx, ids)`` for every id in the spec and every id other kinds name as
   a prerequisite that the spec does not declare for this host, and once more for
   the owned ids that left the spec (prune candidates), when there are any. One
   request, not one per resource.
2. ``desired(resource, ctx)`` for each resource, then ``compare`` and ``action_for``.
   Plan and apply both go through these same calls, so a dry-run cannot drift
   from a real run. A prerequisite that is neither declared nor observed is a
   plan error for the host (nothing is applied there). Then, for the changes
   only: ``refusal`` for each, and, for changed ``text_fields``, ``desired_text``
   and ``text_path`` (the engine reads the current texts of all of them with one
   capped remote command).
3. During apply, per run of consecutive changes of this kind: ``observe`` again
   first when a prerequisite of them was applied earlier in the run (their plan-time
   state predates the tool; so ``observe`` must not fail on a host without it), then
   ``begin``, then
   ``apply`` for each change, then the file work the applies queued in
   ``ctx.writes`` is sent as one request (a queued item that fails fails its own
   change only), then ``finish``; then ``observe`` again for the applied ids; a
   resource that still differs is a failure.

Scheduled jobs: a kind whose resources run work on the host on their own schedule
(a backup's cron job, its offsite copies and restore drills) and record how each
run ended MAY report those results through ``job_results(rid, state)``, from the
state ``observe`` returned (no extra host call). The GitOps controller asks every
time it observes hosts (each apply and each drift check) and records each result
it has not seen before in its history, metrics and notifications (see
docs/plugins.md, "Scheduled jobs"); ``reconcile plan`` and ``apply`` ignore them.

``observe`` calls of all kinds run in parallel threads and their requests to the
host are merged into batches (``reconciler.transport.coalesce``), so a provider
just calls its transport; it should make few calls in a row (each is a round).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from reconciler.diagnostics import SourcePos
from reconciler.diffing import diff_states
from reconciler.errors import ReconcilerError
from reconciler.fleet import Fleet
from reconciler.interpolate import PublishedLookup, reveal
from reconciler.plan import Action, Change, FieldChange
from reconciler.sensitive import KnownAfterApply, Sensitive
from reconciler.transport.base import Transport
from reconciler.writebatch import WriteBatch

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

State = dict[str, Any]
"""A resource's state as plain data: what the spec wants, or what the host has."""

Prerequisite = str | tuple[str, ...]
"""An address (``packages:nginx``), or a tuple of addresses of which any one will do
(``("packages:nftables", "packages:ufw")``)."""


class Resource(BaseModel):
    """Fields every resource has. Providers subclass this for their own model."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    hosts: list[str] | None = Field(
        default=None, description="Hosts this applies to: host names, groups or patterns (backend-*); "
                                  "!NAME leaves hosts out (default: all).")
    depends_on: list[str] = Field(
        default_factory=list, description="Addresses (kind:id) that must be applied first; SELECTOR/kind:id "
                                          "waits for that resource on other hosts (database/containers:pg).")
    # Where the resource was declared, so a provider can resolve template paths
    # relative to its spec file. Private: not part of the schema.
    _source_file: str | None = PrivateAttr(default=None)
    # The directory files named in the spec must stay inside (see reconciler.specfiles).
    _spec_root: str | None = PrivateAttr(default=None)
    # Positions of the resource's own fields, keyed by the path inside the resource
    # (``()`` is the resource itself), so a provider can point an error at a spec line.
    _positions: dict[tuple[str | int, ...], SourcePos] = PrivateAttr(default_factory=dict)

    @property
    def source_dir(self) -> str:
        import os

        return os.path.dirname(self._source_file) if self._source_file else os.getcwd()

    def read_spec_file(self, name: str, *, what: str = "file") -> str:
        """The UTF-8 text of a file this resource names (relative to its spec file),
        which must resolve, symlinks included, inside the spec root. Raises
        ``SpecFileError`` (a ``ReconcilerError``) otherwise; the message never holds
        the file's content. A provider MUST read every spec-named local file this way."""
        from pathlib import Path

        from reconciler.specfiles import find_spec_root, read_spec_text

        root = Path(self._spec_root) if self._spec_root else find_spec_root(self.source_dir)
        return read_spec_text(root, Path(self.source_dir), name, what=what)

    def position(self, *path: str | int) -> SourcePos | None:
        """Where the spec wrote ``path`` inside this resource (the nearest enclosing
        field that has a position), or None when the resource was not loaded from a file."""
        while True:
            if path in self._positions:
                return self._positions[path]
            if not path:
                return None
            path = path[:-1]

    def spec_location(self, *path: str | int) -> str | None:
        """``file:line:col`` of ``path`` inside this resource as an operator finds it:
        the file relative to the spec root (the repository), or None when unknown."""
        import os

        pos = self.position(*path)
        if pos is None:
            return None
        shown = pos.file
        if self._spec_root:
            absolute = os.path.abspath(pos.file)
            if absolute.startswith(self._spec_root.rstrip(os.sep) + os.sep):
                shown = os.path.relpath(absolute, self._spec_root)
        return f"{shown}:{pos.line}:{pos.column}"

    def copy_private_from(self, other: Resource) -> None:
        """Keep where ``other`` came from (a copy made with substituted values)."""
        self._source_file = other._source_file
        self._spec_root = other._spec_root
        self._positions = other._positions


R = TypeVar("R", bound=Resource)


@dataclass(frozen=True)
class Issue:
    """A problem found by a provider's offline validation, at a path inside the resource."""

    path: tuple[str | int, ...]
    message: str
    warning: bool = False


class JobOutcome(StrEnum):
    """How one run of a scheduled host job ended."""

    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class JobResult:
    """The last recorded run of one scheduled job of one resource on a host.

    ``address``: the resource (``kind:id``). ``job``: which of its jobs, a short
    stable name (``backup``, ``offsite:TARGET``, ``drill``); with the address it
    names the job, so a result is new when its ``finished_at`` (Unix seconds,
    when the run ended, as the host recorded it) is later than the last one seen.
    ``detail``: one short line for people (why it failed), never a secret.
    ``artefact``: what the run produced or used (a backup file's name), or ""."""

    address: str
    job: str
    result: JobOutcome
    finished_at: float
    detail: str = ""
    artefact: str = ""

    @property
    def ok(self) -> bool:
        return self.result is JobOutcome.OK


@dataclass
class HostContext:
    """What a provider may know about the host it is working on."""

    name: str
    transport: Transport
    vars: Mapping[str, str] = field(default_factory=dict)
    secrets: dict[str, Sensitive] = field(default_factory=dict)
    revision: str = ""
    dry_run: bool = False
    # Addresses (kind:id) changed successfully so far in this run, in order; lets a
    # provider react to what it depends on (a service restarts when its env file changed).
    applied: set[str] = field(default_factory=set)
    # Free-form per-run scratch space for providers (e.g. "a daemon-reload is due").
    scratch: dict[str, Any] = field(default_factory=dict)
    # File work queued by ``apply`` and sent by the engine as one request after the
    # run's last ``apply``, before ``finish`` (see reconciler.writebatch).
    writes: WriteBatch = field(default_factory=WriteBatch)
    # Resolves ${published:HOST/KIND:ID/FIELD}; the engine sets it (None: such values
    # are known after apply).
    published: PublishedLookup | None = None
    # The spec's hosts, groups and facts, for fleet references in texts a provider reads
    # itself (templates); see ``expand_fleet``.
    fleet: Fleet | None = None

    def expand_fleet(self, text: str) -> str:
        """Resolve fleet references in a text the provider read itself (a template):
        ``${host:SELECTOR/FIELD}``, and lines holding ``${each:SELECTOR/FIELD}``
        repeated per host (reconciler.fleet). Raises ``FleetError`` (a
        ``ReconcilerError``) naming the line of a reference that names nothing usable."""
        return text if self.fleet is None else self.fleet.expand_text(text)

    # Resolves ${secret:HOST/NAME}, a secret generated on another host; the engine sets it.
    remote_secret: Callable[[str], Sensitive | None] | None = None

    def reveal(self, text: str) -> str | Sensitive | KnownAfterApply:
        """Resolve ``${secret:NAME}``, ``${secret:HOST/NAME}`` and ``${published:...}`` in
        text; see interpolate.reveal."""
        return reveal(text, self._secret, self.published)

    def _secret(self, name: str) -> Sensitive | None:
        if "/" in name:
            return self.remote_secret(name) if self.remote_secret is not None else None
        return self.secrets.get(name)


@dataclass
class ApplyItem:
    """One planned change, handed to ``Provider.apply`` with everything it needs."""

    change: Change
    resource: Resource | None  # None when deleting
    desired: State | None      # None when deleting
    actual: State | None       # None when creating


class Provider(Generic[R]):
    kind: ClassVar[str]
    """The spec's top-level key for this kind, e.g. ``files``. Also the address prefix."""
    model: ClassVar[type[Resource]]
    order: ClassVar[int] = 50
    """Default apply position; lower runs earlier. Deletes run in reverse order."""
    singleton: ClassVar[bool] = False
    """True when the spec holds one object (not a list) of this kind, e.g. a firewall."""
    implied_by: ClassVar[tuple[str, ...]] = ()
    """For a singleton kind: kinds whose resources put it in effect, with its defaults,
    on their hosts when the spec does not declare it (host-wide settings that every
    resource of those kinds relies on, e.g. nginx's TLS defaults for nginx_sites)."""
    provides_secrets: ClassVar[bool] = False
    prunable: ClassVar[bool] = True
    """False for kinds whose objects are too precious to delete when they leave the spec
    (generated secrets): they are released and left in place, with a warning."""
    replace_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields whose change forces delete-then-create; ``{"*"}`` means every field."""
    description: ClassVar[str] = ""
    text_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields whose value is the digest (``sha256:...``) of a text the provider writes: a
    file's content, a unit, a site, a script. A change to one is shown as a unified diff
    of the text (see ``desired_text`` and ``text_path``); nothing is read from the host
    unless the field changed."""
    internal_fields: ClassVar[Mapping[str, str]] = {}
    """Bookkeeping fields of the state that the user does not write (a pending
    daemon-reload), mapped to what a change of one means in the user's words;
    ``{old}`` stands for the observed value. Plans show the words, not the field."""
    published_fields: ClassVar[frozenset[str]] = frozenset()
    """Fields other resources may reference as ``${published:HOST/KIND:ID/FIELD}``
    (``published`` returns their values). Public values only, never secrets: they are
    written into other hosts' files and shown in plans."""

    # --- identity and offline validation -------------------------------------------
    def resource_id(self, resource: R) -> str:
        raise NotImplementedError

    def validate(self, resource: R) -> list[Issue]:
        """Checks that need no host. Pydantic already enforced types."""
        return []

    def requires(self, resource: R) -> list[str]:
        """Addresses this resource implicitly depends on (besides depends_on and secrets)."""
        return []

    def prerequisites(self, resource: R) -> list[Prerequisite]:
        """What must be on the host for this resource to work, as addresses of *other*
        kinds: ``["packages:nginx"]``; a tuple is a choice (any one is enough).

        For each one the engine, per host:
        - when the spec declares it for this host: orders this resource after it
          (as ``requires`` does) and fails the plan if the spec says it must not exist;
        - otherwise: asks that kind's provider to observe the id as well (like a prune
          candidate) and, when it is absent, fails the host's plan with
          ``nginx_sites:web needs packages:nginx, which is not installed on host web
          and not in the spec``.
        An address of a kind that is not loaded is ignored. Return nothing for a
        resource the spec wants gone: removing needs no tools."""
        return []

    def triggers(self, resource: R) -> list[str]:
        """Addresses whose change in a run must re-apply this resource even when its own
        state already matches (e.g. restart a service when its config file changed).

        The engine orders this resource after them and, when one of them has a planned
        change, plans an update of this resource with reason ``triggered``. At apply
        time ``HostContext.applied`` tells which of them really changed."""
        return []

    # --- reading ----------------------------------------------------------------------
    def desired(self, resource: R, ctx: HostContext) -> State | None:
        """The state the spec asks for; only the fields the spec controls. ``None`` means
        the object must not exist (the engine plans a delete when it does)."""
        raise NotImplementedError

    def observe(self, ctx: HostContext, ids: Sequence[str],
                resources: Mapping[str, R]) -> dict[str, State | None]:
        """Actual state of every id in ``ids`` (None = absent), in one batch.
        ``resources`` maps the ids that are in the spec to their resource."""
        raise NotImplementedError

    def unmanaged(self, ctx: HostContext, observed: Mapping[str, State | None]) -> list[str]:
        """Objects of this kind on the host that the reconciler does not own (shown, never touched)."""
        return []

    def release_reason(self, rid: str, actual: State | None) -> str | None:
        """An owned, created object ``rid`` left the spec: why it must stay (the plan
        shows this as a warning and the reconciler forgets it), or None to delete it.
        ``actual`` is its observed state (None: already gone). Default: kept exactly
        when ``prunable`` is False. A kind overrides this when the choice is per
        object (a package is removed only when its spec said ``prune: true``)."""
        if self.prunable:
            return None
        return f"{self.kind} are never deleted automatically, so it is released and left in place"

    def published(self, rid: str, state: State | None) -> dict[str, str]:
        """The ``published_fields`` of one observed resource that exist (``state`` as
        ``observe`` returned it; None when absent)."""
        return {}

    def job_results(self, rid: str, state: State) -> list[JobResult]:
        """The last recorded run of each scheduled job of the observed resource ``rid``
        (``state`` as ``observe`` returned it, never None), newest known result per
        job; a job that never ran is left out. Pure: read from ``state`` only. The
        ``detail`` and ``artefact`` reach history, notifications and logs, so they
        must hold no secret. Default: none."""
        return []

    def secret_values(self, observed: Mapping[str, State | None]) -> dict[str, Sensitive]:
        """For providers with ``provides_secrets``: secret name -> value, from observed state."""
        return {}

    def desired_text(self, resource: R, field_name: str, ctx: HostContext) -> str | None:
        """The text whose digest ``desired()[field_name]`` is, for a field in ``text_fields``,
        with ``${secret:NAME}`` references left in place: the engine resolves them to
        compare lines and shows ``(sensitive)`` in their place. None: no text to show."""
        return None

    def text_path(self, rid: str, field_name: str, actual: State) -> str | None:
        """The host file that holds the observed text of ``field_name`` (None: none to show).
        The engine reads at most ``textdiff.READ_CAP`` bytes of it, only when the field
        changed, and never through a symlink."""
        return None

    # --- comparing --------------------------------------------------------------------
    def compare(self, desired: State, actual: State) -> list[FieldChange]:
        return diff_states(desired, actual)

    def action_for(self, fields: Sequence[FieldChange]) -> Action:
        if "*" in self.replace_fields:
            return Action.REPLACE
        for f in fields:
            if f.path.split(".", 1)[0].split("[", 1)[0] in self.replace_fields:
                return Action.REPLACE
        return Action.UPDATE

    def refusal(self, item: ApplyItem) -> str | None:
        """Why ``apply`` would refuse this planned change whatever happens, judged from
        the desired and observed state alone (a directory on the host where the spec
        wants a file). The plan shows it as refused and apply fails it without trying."""
        return None

    # --- changing ---------------------------------------------------------------------
    def begin(self, ctx: HostContext, items: Sequence[ApplyItem]) -> None:
        """Called once before a run of this kind's changes (e.g. to validate them all)."""

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        raise NotImplementedError

    def finish(self, ctx: HostContext, items: Sequence[ApplyItem]) -> None:
        """Called once after a run of this kind's changes, even when some failed."""


class ProviderLoadError(ReconcilerError):
    pass


@functools.cache
def _entry_points() -> tuple[EntryPoint, ...]:
    """The ``reconciler.providers`` entry points, read once per process: reading them
    scans every installed distribution's metadata."""
    from importlib.metadata import entry_points

    return tuple(entry_points(group="reconciler.providers"))


_instances: dict[tuple[str, str], Provider[Any]] = {}
_instances_lock = threading.Lock()


def _instance(ep: EntryPoint) -> Provider[Any]:
    """The provider of one entry point, imported and made once per process."""
    with _instances_lock:
        key = (ep.name, ep.value)
        if key not in _instances:
            try:
                cls = ep.load()
            except Exception as exc:  # a broken plugin must not hide the others' errors
                raise ProviderLoadError(f"provider {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
            _instances[key] = cls()
        return _instances[key]


def provider_names() -> frozenset[str]:
    """The names of the registered providers' entry points, without loading any. A
    provider named after its kind (as every built-in one is) is loaded only for specs
    that use that kind; see ``load_providers``."""
    return frozenset(ep.name for ep in _entry_points())


def load_providers(kinds: Iterable[str] | None = None) -> dict[str, Provider[Any]]:
    """The providers registered under the ``reconciler.providers`` entry-point group,
    ordered by (``order``, kind): every one, or with ``kinds`` those whose entry points
    are named in ``kinds`` and every other one registered from the same modules (so a
    singleton that a kind implies, ``implied_by``, comes with it when both are
    registered from one module). Importing a kind's modules and building its models
    is most of a run's start-up, so a spec loads only the kinds it names.

    Two providers claiming one kind is an error among those loaded (always caught with
    every provider loaded, as ``reconcile schema`` does)."""
    eps = _entry_points()
    if kinds is not None:
        wanted = set(kinds)
        modules = {ep.module for ep in eps if ep.name in wanted}
        eps = tuple(ep for ep in eps if ep.module in modules)
    found: dict[str, Provider[Any]] = {}
    for ep in eps:
        provider = _instance(ep)
        if provider.kind in found:
            raise ProviderLoadError(f"two providers claim kind {provider.kind!r}")
        found[provider.kind] = provider
    # A plugin that logs through structlog directly gets the CLI's log set-up.
    from reconciler.logs import apply_if_imported

    apply_if_imported()
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))
