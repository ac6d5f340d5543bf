"""The controller loop: fetch, validate, plan, apply, check health, roll back, correct drift.

What to do next is decided by the pure core (``core.decide``); this module is the
runner around it: it turns the core's actions into effects (git, engine runs,
health probes, status and history files, metrics, watchers) and their results
into events. One thread makes every change, so runs never overlap; watchers, the
webhook and timers only *request* a fetch or a drift check, and requests that
arrive while a run is busy are coalesced into one.

A new commit goes through, in order, and stops at the first failure:

1. signature (``require_signed``): unsigned or untrusted -> refused;
2. checkout and spec validation: any spec error -> refused, no host touched;
3. sync windows: outside them -> planned and reported, applied when a window opens;
4. plan and apply under the host locks;
5. health within the grace window, probed every ``health.interval`` until it passes or
   the grace ends: the configured checks pass and every host can be planned. A commit is
   judged by what it changed: drift of other resources seen by a probe is corrected as
   drift, its own resources changed again by something else are *contested* (corrected,
   reported), and a drift fix that rode along with its apply and failed is drift too.

Refused, failed and rolled-back commits are *quarantined*: never retried, only a
newer commit is tried (a terminal failure waits for new input). A failure that
comes from the connection (``TransportError``, a busy host lock, the host
unreachable) is *transient*: the same commit is retried with exponential
backoff and jitter. An apply or health failure is rolled back by applying the
last good revision again from its own worktree.

Between commits, the applied revision is planned again every ``drift_interval``
(and once at start) and at once on watcher events; what differs is drift,
corrected when the ``drift_correction`` policy and the windows allow, and
logged with before and after. Every drift check counts as a run in the metrics
(``in-sync`` when it found nothing), so ``last_run_timestamp_seconds`` shows the
loop turning.

Everything kept is bounded: the history by size and age (``history.py``), worktrees to
the revisions in use, the clone by ``git gc --auto``, pooled SSH connections are
replaced after ``RECYCLE_AFTER_COMMANDS`` commands.

Crash safety: ``status.json`` records the run in flight before it starts. After
a SIGKILL the next start sees the same head not yet applied and applies it again
(writes are atomic and applying is idempotent, so it converges). A commit during
whose run the controller died ``MAX_CRASHES`` times is quarantined, so a commit
that kills the controller cannot crash-loop it. A stop (SIGTERM) during a health
grace leaves the commit to be verified again at the next start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import gc
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from reconciler import __version__
from reconciler.controller.config import ControllerConfig
from reconciler.controller.core import (
    MAX_CRASHES,
    Action,
    Applied,
    ApplyRevision,
    CheckSignature,
    Cleanup,
    CountFailure,
    CountJob,
    CountRun,
    Decision,
    DriftRequested,
    Event,
    Fetch,
    Fetched,
    FetchFailed,
    FetchRequested,
    HealthProbed,
    LoadOutcome,
    LoadRevision,
    Log,
    LogLevel,
    Notify,
    Planned,
    PlanRevision,
    Policy,
    ProbeHealth,
    PublishApplied,
    RecordJob,
    RecordRun,
    RevisionLoaded,
    SaveStatus,
    SetCommitStatus,
    SignatureChecked,
    Started,
    State,
    StepFailed,
    Stopping,
    Tick,
    WatchRevision,
    backoff_step,
    decide,
    next_wakeup,
    pass_complete,
    state_from_status,
    status_from_state,
)
from reconciler.controller.gitsource import GitSource, GitSourceError, local_git_dir
from reconciler.controller.history import HistoryLimits
from reconciler.controller.hostview import host_views
from reconciler.controller.httpserver import ControlServer, Route
from reconciler.controller.metrics import Metrics
from reconciler.controller.notices import Notice, NoticeKind
from reconciler.controller.notifications import Notifications, Outcome
from reconciler.controller.notify import Notifier
from reconciler.controller.page import PageData, StatusPage
from reconciler.controller.pull import for_this_host
from reconciler.controller.records import CommitInfo, Trigger, utc_text
from reconciler.controller.runner import Runner, outcome, rollout_of
from reconciler.controller.state import ControllerStatus, StateStore
from reconciler.controller.transports import TransportPool
from reconciler.controller.watchers import (
    DockerEventsWatcher,
    PathWatcher,
    RepoWatcher,
    ServiceEventsWatcher,
    managed_paths,
)
from reconciler.diagnostics import Diagnostic, Diagnostics, SourcePos
from reconciler.errors import ReconcilerError
from reconciler.provider import ProviderLoadError
from reconciler.sensitive import REDACTOR
from reconciler.spec import LoadedSpec, load_spec, stack_name_in_repo

log = structlog.get_logger("reconciler.controller")

__all__ = ["MAX_CRASHES", "MAX_RUN_SECONDS", "Controller", "backoff_delay", "relative_diagnostics"]

MAX_RUN_SECONDS = 3600.0
"""The default of ``stuck_after``: a run busy longer counts as stuck (healthz 503, no
watchdog ping, a ``controller-stuck`` notice)."""
NOTIFY_GRACE = 15.0
"""Seconds queued notices and commit statuses get to go out when the controller stops."""
GC_EVERY = 50
"""New heads between two ``git gc --auto`` of the clone (each fetch adds a pack or loose objects)."""
MAX_SLEEP = 60.0
"""The loop wakes at least this often, so a clock set back cannot stall its timers."""

_LEVELS = {LogLevel.DEBUG: logging.DEBUG, LogLevel.INFO: logging.INFO, LogLevel.WARNING: logging.WARNING,
           LogLevel.ERROR: logging.ERROR}


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """``core.backoff_step`` with the jitter drawn from ``rng``."""
    return backoff_step(attempt, base, cap, rng.random())


def relative_diagnostics(diags: Diagnostics, root: Path) -> list[Diagnostic]:
    """Errors with file paths relative to the repository, as its authors know them."""
    out: list[Diagnostic] = []
    for d in diags.sorted():
        if d.pos is not None:
            absolute = os.path.abspath(d.pos.file)
            rel = os.path.relpath(absolute, root) if absolute.startswith(str(root) + os.sep) else d.pos.file
            d = dataclasses.replace(d, pos=SourcePos(rel, d.pos.line, d.pos.column))
        out.append(d)
    return out


def _iso_epoch(text: str) -> float | None:
    """A commit date (ISO 8601 with its offset) as Unix time; None when absent or odd."""
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_memory() -> None:
    """Give what a finished run left behind back to the system, once per commit run.

    A loaded spec is a web of cycles (each load builds its pydantic model classes), so it
    is freed by a full collection, which a steady heap triggers seldom; and glibc keeps
    freed pages in its heaps. Collecting and trimming here keeps a controller that runs for
    months at the size it had after its first runs (bench/bench_soak.py)."""
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _epoch(text: str) -> float | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class Controller:
    """Runs the core's decisions against git, the engine and the state directory."""

    def __init__(self, config: ControllerConfig, *, environ: Mapping[str, str] | None = None,
                 metrics: Metrics | None = None, notifier: Notifier | None = None) -> None:
        self.config = config
        self.policy = Policy.from_config(config)
        self.environ = dict(os.environ if environ is None else environ)
        self.store = StateStore(config.state_path, HistoryLimits(max_bytes=config.history_max_size,
                                                                 max_age=config.history_max_age))
        self.source = GitSource(config.repo, config.branch, self.store.repo_dir, self.store.worktrees_dir,
                                timeout=config.git_timeout, environ=self.environ)
        self.pool = TransportPool()
        self.runner = Runner(self.pool, lock_timeout=config.lock_timeout)
        self.metrics = metrics or Metrics()
        self.notifier = notifier or Notifier(self.environ)
        # Targets' URLs and secrets are read now: a missing file stops the start, not a notice.
        self.notifications = Notifications.from_config(config, self.environ, on_outcome=self._count_notice)
        self._page_history: list[dict[str, Any]] = []
        self._stuck: str | None = None
        self.state = State()
        self.http: ControlServer | None = None
        self._base = ControllerStatus()
        self._snapshot: dict[str, Any] = {}
        self._specs: dict[str, LoadedSpec] = {}
        self._rng = random.Random()
        self._cond = threading.Condition(threading.RLock())
        self._stop = threading.Event()
        self._want_fetch: Trigger | None = None
        self._want_drift: Trigger | None = None
        self._drift_detail: list[str] = []
        self._heartbeat = time.monotonic()
        self._busy_since: float | None = None
        self._new_heads = 0
        self._repo_watcher: RepoWatcher | None = None
        self._watching = False  # event sources run (not in a --once pass)
        self._path_watcher = PathWatcher(lambda paths: self.request_drift(Trigger.FILE_EVENT, sorted(paths)))
        self._docker_watcher = DockerEventsWatcher(
            lambda host, what: self.request_drift(Trigger.DOCKER_EVENT, [f"{host}: {what}"]))
        self._service_watcher = ServiceEventsWatcher(
            lambda host, what: self.request_drift(Trigger.SERVICE_EVENT, [f"{host}: {what}"]))

    # ------------------------------------------------------------------ requests (any thread)
    def request_fetch(self, trigger: Trigger) -> None:
        with self._cond:
            self._want_fetch = self._want_fetch or trigger
            self._cond.notify_all()

    def request_drift(self, trigger: Trigger, detail: list[str] | None = None) -> None:
        log.debug("drift check requested", trigger=trigger.value, detail=detail)
        with self._cond:
            self._want_drift = self._want_drift or trigger
            self._drift_detail = (self._drift_detail + list(detail or []))[-20:]
            self._cond.notify_all()

    def stop(self) -> None:
        """Finish the current run, then leave ``run`` (safe from a signal handler)."""
        self._stop.set()
        with self._cond:  # reentrant: a signal handler runs on the loop thread, which may hold it
            self._cond.notify_all()

    # ------------------------------------------------------------------ health of the loop
    def alive(self) -> tuple[bool, str]:
        now = time.monotonic()
        busy_since = self._busy_since
        if busy_since is not None:
            busy = now - busy_since
            if busy > self.config.stuck_after:
                return False, f"a run has been busy for {busy:.0f} s"
            return True, f"ok: running for {busy:.0f} s"
        idle = now - self._heartbeat
        limit = min(self.config.interval, self.config.drift_interval) + 60
        if idle > limit:
            return False, f"the loop has not turned for {idle:.0f} s"
        return True, "ok"

    def status_json(self) -> dict[str, Any]:
        """The status as last saved (for the HTTP thread: the loop thread owns ``state``)."""
        return self._snapshot

    # ------------------------------------------------------------------ lifecycle
    def run(self, *, once: bool = False) -> int:
        """Run until ``stop()`` (or one pass with ``once``). Returns the exit code:
        0, or 1 when ``once`` and the pass ended in an error."""
        self.store.prepare()
        self.store.acquire()
        self.notifications.start()
        try:
            self._recover()
            if not once:
                self._start_services()
            self.notifier.ready(self._status_line())
            if self.notifier.watchdog_interval and not once:
                threading.Thread(target=self._watchdog, name="controller-watchdog", daemon=True).start()
            if self.notifications.enabled and not once:
                threading.Thread(target=self._monitor, name="controller-monitor", daemon=True).start()
            return self._loop(once=once)
        finally:
            self.notifier.stopping()
            self.notifications.close(NOTIFY_GRACE)
            self._stop_services()
            self.pool.close()
            self.store.release()

    def _start_services(self) -> None:
        self._watching = True
        address = self.config.listen_address
        if address is not None:
            routes: dict[str, Route] = {}
            if self.config.status_page.enabled:
                routes["/"] = StatusPage(self._page_data, self.config.status_page.token())
            self.http = ControlServer(address[0], address[1], metrics=self.metrics,
                                      secret=self.config.webhook_secret(self.environ),
                                      on_push=lambda _event: self.request_fetch(Trigger.WEBHOOK),
                                      healthy=self.alive, status=self.status_json, routes=routes)
            self.http.start()
            log.info("listening", address=f"{self.http.address[0]}:{self.http.address[1]}",
                     webhook=self.http.secret is not None)
        git_dir = local_git_dir(self.config.repo)
        if git_dir is not None and self.config.watch_local:
            self._repo_watcher = RepoWatcher(git_dir, lambda: self.request_fetch(Trigger.LOCAL_REPO))
            self._repo_watcher.start()

    def _stop_services(self) -> None:
        if self._repo_watcher is not None:
            self._repo_watcher.stop()
        self._path_watcher.stop()
        self._docker_watcher.stop()
        self._service_watcher.stop()
        if self.http is not None:
            self.http.stop()
            self.http = None

    def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval or 30.0
        while not self._stop.wait(interval):
            ok, detail = self.alive()
            if ok:
                self.notifier.watchdog()
            else:
                log.error("not sending the watchdog ping", reason=detail)

    def _monitor(self) -> None:
        """Tell people when the loop is stuck (a run busy past ``stuck_after``, or the loop
        not turning): the loop thread itself cannot, it is the one that is stuck."""
        interval = max(0.5, min(30.0, self.config.stuck_after / 4))
        while not self._stop.wait(interval):
            ok, detail = self.alive()
            if not ok and self._stuck is None:
                self._stuck = detail
                flight = self.state.in_flight
                head = self.state.head
                revision = flight.revision if flight else head.revision if head else ""
                log.error("the controller is stuck", reason=detail)
                self.notifications.publish(Notice(
                    NoticeKind.CONTROLLER_STUCK, utc_text(time.time()), revision,
                    f"the controller is stuck: {detail}", tuple(sorted(self.state.resources))))
            elif ok and self._stuck is not None:
                log.info("the controller is no longer stuck", was=self._stuck)
                self._stuck = None

    def _recover(self) -> None:
        status = self.store.read_status() or ControllerStatus()
        self._base = dataclasses.replace(status, repo=self.config.repo, branch=self.config.branch,
                                         path=self.config.path, pid=os.getpid(), version=__version__)
        self.state = state_from_status(status)
        if self.store.repair_history():
            log.warning("trimmed a history line cut short by a crash", path=str(self.store.history_path))
        applied = self.state.applied
        if applied is not None:
            # The time of that apply, not of this start.
            self.metrics.applied(applied.revision, self.config.branch, at=_epoch(applied.at))
        self._page_history = self.store.read_history(self.config.status_page.history)
        self._save()

    # ------------------------------------------------------------------ the loop
    def _loop(self, *, once: bool) -> int:
        errors_before = self.state.last_error
        self._dispatch(Started(time.time()))
        while not self._stop.is_set():
            if once and pass_complete(self.state, self.policy, time.time()):
                failed = self.state.last_error is not None and self.state.last_error != errors_before
                retrying = self.state.retry is not None or self.state.fetch_retry is not None
                return 1 if failed or retrying else 0
            event = self._next_event()
            if event is None:
                break
            self._dispatch(event)
            self._heartbeat = time.monotonic()
            self.notifier.status(self._status_line())
        self._dispatch(Stopping(time.time()))
        return 0

    def _next_event(self) -> Event | None:
        """Wait for a request or the core's next timer; None once stopped."""
        with self._cond:
            while not self._stop.is_set():
                now = time.time()
                if self._want_fetch is not None:
                    trigger, self._want_fetch = self._want_fetch, None
                    return FetchRequested(now, trigger)
                if self._want_drift is not None:
                    event = DriftRequested(now, self._want_drift, tuple(self._drift_detail))
                    self._want_drift, self._drift_detail = None, []
                    return event
                due = next_wakeup(self.state, self.policy, now)
                if now >= due:
                    return Tick(now)
                self._cond.wait(min(due - now, MAX_SLEEP))
                self._heartbeat = time.monotonic()
        return None

    def _dispatch(self, event: Event) -> None:
        """Decide on ``event``, perform the actions, and go on with their results."""
        pending: deque[Event] = deque([event])
        while pending:
            current = pending.popleft()
            decision: Decision = decide(self.state, current, self.policy)
            self.state = decision.state
            log.debug("decided", on=type(current).__name__, rules=[r.name for r in decision.rules],
                      actions=[type(a).__name__ for a in decision.actions])
            for action in decision.actions:
                try:
                    result = self._perform(action)
                except Exception as exc:
                    log.exception("controller step failed", step=type(action).__name__)
                    if isinstance(current, StepFailed):
                        break  # recording the failure failed as well: do not loop on it
                    pending.clear()
                    pending.append(StepFailed(time.time(), REDACTOR.scrub(f"{type(exc).__name__}: {exc}")))
                    break
                if result is not None:
                    pending.append(result)

    # ------------------------------------------------------------------ effects
    def _perform(self, action: Action) -> Event | None:
        match action:
            case Fetch():
                return self._busy(self._fetch, action)
            case CheckSignature():
                return self._busy(self._check_signature, action)
            case LoadRevision():
                return self._busy(self._load, action)
            case PlanRevision():
                return self._busy(self._plan, action)
            case ApplyRevision():
                return self._busy(self._apply, action)
            case ProbeHealth():
                return self._busy(self._probe, action)
            case SaveStatus():
                self._save()
            case RecordRun():
                self.store.append_history(action.record.to_json(), keep=self._revisions_in_use())
                self._page_history = self.store.read_history(self.config.status_page.history)
            case RecordJob():
                self.store.append_history(action.job.history_entry(action.time, action.revision),
                                          keep=self._revisions_in_use())
                self._page_history = self.store.read_history(self.config.status_page.history)
            case CountRun():
                self._count_run(action)
            case CountJob():
                self.metrics.job_results.labels(action.job.host, action.job.job, action.job.address,
                                                action.job.result.value).inc()
            case CountFailure():
                self.metrics.failures.labels(action.stage.value).inc()
            case PublishApplied():
                self.metrics.applied(action.revision, self.config.branch, at=action.at)
                committed = _iso_epoch(action.committed)
                if committed is not None:
                    self.metrics.committed_to_applied(action.at - committed)
            case Notify():
                self.notifications.publish(action.notice)
            case SetCommitStatus():
                self.notifications.commit_status(action.status)
            case WatchRevision():
                spec = self._specs.get(action.revision)
                if spec is not None:
                    self._update_watchers(spec)
            case Cleanup():
                self._cleanup(action.keep)
            case Log():
                log.log(_LEVELS[action.level], action.message, **dict(action.fields))
        return None

    def _busy(self, effect: Any, action: Any) -> Event:
        self._busy_since = time.monotonic()
        try:
            result: Event = effect(action)
            return result
        finally:
            self._busy_since = None

    def _fetch(self, action: Fetch) -> Event:
        try:
            sha = self.source.fetch()
        except GitSourceError as exc:
            return FetchFailed(time.time(), action.trigger, str(exc), jitter=self._rng.random())
        info = None
        head = self.state.head
        if head is None or head.revision != sha:
            self._new_heads += 1
            if self._new_heads % GC_EVERY == 0:
                self.source.maintain()
        if head is None or head.revision != sha or head.info is None:
            try:
                commit = self.source.info(sha)
                info = CommitInfo(commit.summary, commit.author, commit.committed_at)
            except Exception as exc:  # informational only
                log.debug("no commit info", revision=sha, error=str(exc))
        return Fetched(time.time(), action.trigger, sha, info)

    def _check_signature(self, action: CheckSignature) -> Event:
        check = self.source.verify(action.revision, allowed_signers=self.config.allowed_signers,
                                   gpg_home=self.config.gpg_home)
        return SignatureChecked(time.time(), action.revision, check.ok, check.detail)

    def _load(self, action: LoadRevision) -> Event:
        sha = action.revision
        try:
            tree = self.source.checkout(sha)
            spec, diags = load_spec(str(tree / self.config.path),
                                    default_stack=stack_name_in_repo(self.config.repo, self.config.path))
        except GitSourceError as exc:
            return RevisionLoaded(time.time(), sha, LoadOutcome.CHECKOUT_FAILED, str(exc))
        except ProviderLoadError as exc:
            # The installation is broken, not the commit: retry it once that is fixed.
            return RevisionLoaded(time.time(), sha, LoadOutcome.PROVIDERS_BROKEN, str(exc),
                                  jitter=self._rng.random())
        if spec is None:
            errors = [d for d in relative_diagnostics(diags, tree) if d.severity.value == "error"]
            return RevisionLoaded(time.time(), sha, LoadOutcome.SPEC_ERRORS,
                                  "\n".join(str(d) for d in errors),
                                  tuple(d.to_json() for d in errors))
        if self.config.host is not None:
            # Pull mode (pull.py): this machine's host of the spec, reached locally.
            try:
                spec = for_this_host(self.config.host, spec)
            except ReconcilerError as exc:
                return RevisionLoaded(time.time(), sha, LoadOutcome.SPEC_ERRORS, str(exc))
        self._specs[sha] = spec
        return RevisionLoaded(time.time(), sha, LoadOutcome.LOADED, rollout=rollout_of(spec))

    def _plan(self, action: PlanRevision) -> Event:
        spec = self._specs[action.revision]
        return Planned(time.time(), action.revision, outcome(spec, self.runner.plan(spec, action.revision)))

    def _apply(self, action: ApplyRevision) -> Event:
        spec = self._specs[action.revision]
        evidence = self.runner.explain(spec, action.explain) if action.explain else ()
        result = self.runner.apply(spec, action.revision, hosts=action.hosts,
                                   upstream_failed=action.upstream_failed)
        return Applied(time.time(), action.revision, outcome(spec, result, evidence),
                       jitter=self._rng.random())

    def _probe(self, action: ProbeHealth) -> Event:
        spec = self._specs[action.revision]
        probe = self.runner.probe(spec, action.revision, self.config.health, hosts=action.hosts)
        probed = tuple(h for h in spec.hosts if action.hosts is None or h in action.hosts)
        return HealthProbed(time.time(), action.revision, probed, probe.checks, probe.host_errors,
                            probe.differing, probe.jobs)

    # ------------------------------------------------------------------ bookkeeping
    def _revisions_in_use(self) -> set[str]:
        """Revisions the status refers to: their history entries must survive compaction."""
        s = self.state
        revisions = {r.revision for r in (s.head, s.applied, s.attempted, s.retry, s.deferred, s.in_flight)
                     if r is not None}
        return revisions | {sha for sha, _ in s.quarantined}

    def _save(self) -> None:
        status = status_from_state(self.state, self._base)
        status.history = self.store.history.summary()
        self.store.write_status(status)
        self._snapshot = status.to_json()
        self.metrics.quarantined.set(len(status.quarantined))
        self.metrics.pending_drift.set(len(status.pending_drift))
        self.metrics.hosts(host_views(self._snapshot, self._page_history))
        self.metrics.jobs(self.state.jobs)

    def _page_data(self) -> PageData:
        """For the status page (HTTP thread): the snapshot and history tail the loop
        thread last published (replaced, never changed in place), the windows now."""
        now = time.time()
        windows = self.policy.windows(now) if self.policy.sync_windows else None
        return PageData(self._snapshot, self._page_history, windows, refresh=self.config.status_page.refresh,
                        link=self.config.notifications.link, now=now)

    def _count_notice(self, target: str, outcome: Outcome) -> None:
        self.metrics.notifications.labels(target, outcome.value).inc()

    def _count_run(self, action: CountRun) -> None:
        self.metrics.runs.labels(action.cause, action.result.value).inc()
        if action.seconds is not None:
            self.metrics.run_duration.labels(action.cause).observe(action.seconds)
        if action.drifted:
            self.metrics.drift_events.labels(action.result.value).inc(action.drifted)
        self.metrics.last_run_time.set(time.time())

    def _cleanup(self, keep: frozenset[str]) -> None:
        run = self.state.run
        wanted = set(keep) | ({run.revision} if run is not None else set())
        for sha in [s for s in self._specs if s not in wanted]:
            del self._specs[sha]
        try:
            self.source.prune_worktrees(wanted)
        except Exception as exc:  # a stale worktree only costs disk
            log.debug("worktree cleanup failed", error=str(exc))
        release_memory()

    def _update_watchers(self, spec: LoadedSpec) -> None:
        if not self._watching or not self.config.watch_events or self._stop.is_set():
            return
        local_hosts = [name for name, host in spec.hosts.items() if host.connect == "local"]
        self._path_watcher.set_paths(managed_paths(spec, local_hosts))
        self._docker_watcher.set_spec(spec)
        self._service_watcher.set_spec(spec)

    def _status_line(self) -> str:
        applied = self.state.applied
        text = f"applied {applied.revision[:12]}" if applied else "nothing applied yet"
        if self.state.last_error is not None:
            text += f"; last error on {self.state.last_error.revision[:12]}"
        return text
