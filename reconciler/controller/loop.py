"""The controller loop: fetch, validate, plan, apply, check health, roll back, correct drift.

One thread makes every change, so runs never overlap; watchers, the webhook and
timers only *request* a fetch or a drift check, and requests that arrive while
a run is busy are coalesced into one.

A new commit goes through, in order, and stops at the first failure:

1. signature (``require_signed``): unsigned or untrusted -> refused;
2. checkout and spec validation: any spec error -> refused, no host touched;
3. sync windows: outside them -> planned and reported, applied when a window opens;
4. plan and apply under the host locks;
5. health within the grace window (configured checks, and every host still converged).

Refused, failed and rolled-back commits are *quarantined*: never retried, only a
newer commit is tried (a terminal failure waits for new input). A failure that
comes from the connection (``TransportError``, a busy host lock, the host
unreachable) is *transient*: the same commit is retried with exponential
backoff and jitter. An apply or health failure is rolled back by applying the
last good revision again from its own worktree.

Between commits, the applied revision is planned again every ``drift_interval``
and at once on watcher events; what differs is drift, corrected when the
``drift_correction`` policy and the windows allow, and logged with before and after.

Crash safety: ``status.json`` records the run in flight before it starts. After
a SIGKILL the next start sees the same head not yet applied and applies it again
(writes are atomic and applying is idempotent, so it converges). A commit during
whose run the controller died ``MAX_CRASHES`` times is quarantined, so a commit
that kills the controller cannot crash-loop it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from reconciler import __version__
from reconciler.controller.config import ControllerConfig, DriftCorrection
from reconciler.controller.gitsource import GitSource, GitSourceError, local_git_dir
from reconciler.controller.httpserver import ControlServer
from reconciler.controller.metrics import Metrics
from reconciler.controller.notify import Notifier
from reconciler.controller.runner import Runner, RunResult, plan_changes, resource_health
from reconciler.controller.state import (
    ControllerStatus,
    ErrorRecord,
    InFlight,
    RetryState,
    Revision,
    StateStore,
    utc_now,
)
from reconciler.controller.transports import TransportPool
from reconciler.controller.watchers import (
    DockerEventsWatcher,
    PathWatcher,
    RepoWatcher,
    ServiceEventsWatcher,
    managed_paths,
)
from reconciler.controller.windows import WindowDecision, decide
from reconciler.diagnostics import Diagnostic, Diagnostics, SourcePos
from reconciler.provider import ProviderLoadError
from reconciler.sensitive import REDACTOR
from reconciler.spec import LoadedSpec, load_spec, stack_name_in_repo

log = structlog.get_logger("reconciler.controller")

MAX_CRASHES = 3
"""A commit whose run the controller died in this many times is quarantined."""
MAX_RUN_SECONDS = 3600.0
"""A run busy longer than this counts as stuck (healthz 503, no watchdog ping)."""


class Cause(StrEnum):
    COMMIT = "commit"  # an intended change: a new revision of the spec
    DRIFT = "drift"    # the hosts moved away from the applied revision


class Result(StrEnum):
    APPLIED = "applied"          # the commit's changes were made and are healthy
    UNCHANGED = "unchanged"      # the commit needed no change on any host
    REFUSED = "refused"          # not run (signature or spec error); nothing touched
    ROLLED_BACK = "rolled-back"  # apply or health failed; the last good revision was restored
    FAILED = "failed"            # failed, and nothing (more) could be restored
    DEFERRED = "deferred"        # planned only: the sync windows are closed
    RETRYING = "retrying"        # transient fault; the same revision is retried later
    CORRECTED = "corrected"      # drift corrected
    DETECTED = "detected"        # drift found and left alone (policy or windows)


class Trigger(StrEnum):
    STARTUP = "startup"
    INTERVAL = "interval"
    WEBHOOK = "webhook"
    LOCAL_REPO = "local-repo"
    RETRY = "retry"
    WINDOW = "window"
    DRIFT_INTERVAL = "drift-interval"
    FILE_EVENT = "file-event"
    DOCKER_EVENT = "docker-event"
    SERVICE_EVENT = "service-event"


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half the step is fixed, half random, so
    retries never synchronise across controllers yet still grow."""
    step: float = min(cap, base * 2.0 ** max(0, attempt - 1))
    return step / 2 + rng.uniform(0, step / 2)


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


class Controller:
    def __init__(self, config: ControllerConfig, *, environ: Mapping[str, str] | None = None,
                 metrics: Metrics | None = None, notifier: Notifier | None = None) -> None:
        self.config = config
        self.environ = dict(os.environ if environ is None else environ)
        self.store = StateStore(config.state_path)
        self.source = GitSource(config.repo, config.branch, self.store.repo_dir, self.store.worktrees_dir)
        self.pool = TransportPool()
        self.runner = Runner(self.pool, lock_timeout=config.lock_timeout)
        self.metrics = metrics or Metrics()
        self.notifier = notifier or Notifier(self.environ)
        self.status = ControllerStatus()
        self._snapshot: dict[str, Any] = {}
        self.head: str | None = None
        self.applied_spec: LoadedSpec | None = None
        self.http: ControlServer | None = None
        self._rng = random.Random()
        self._cond = threading.Condition(threading.RLock())
        self._stop = threading.Event()
        self._want_fetch: Trigger | None = None
        self._want_drift: Trigger | None = None
        self._drift_streak = 0
        self._drift_not_before = 0.0
        self._reported_drift = ""
        self._drift_blocked = False
        self._heartbeat = time.monotonic()
        self._busy_since: float | None = None
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
            self._cond.notify_all()

    def stop(self) -> None:
        """Finish the current run, then leave ``run`` (safe from a signal handler)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ health of the loop
    def alive(self) -> tuple[bool, str]:
        now = time.monotonic()
        if self._busy_since is not None:
            busy = now - self._busy_since
            if busy > MAX_RUN_SECONDS:
                return False, f"a run has been busy for {busy:.0f} s"
            return True, f"ok: running for {busy:.0f} s"
        idle = now - self._heartbeat
        limit = min(self.config.interval, self.config.drift_interval) + 60
        if idle > limit:
            return False, f"the loop has not turned for {idle:.0f} s"
        return True, "ok"

    def status_json(self) -> dict[str, Any]:
        """The status as last saved (for the HTTP thread: the loop thread owns ``status``)."""
        return self._snapshot

    # ------------------------------------------------------------------ lifecycle
    def run(self, *, once: bool = False) -> int:
        """Run until ``stop()`` (or one pass with ``once``). Returns the exit code:
        0, or 1 when ``once`` and the pass ended in an error."""
        self.store.prepare()
        self.store.acquire()
        try:
            self._recover()
            if not once:
                self._start_services()
            self.notifier.ready(self._status_line())
            watchdog = None
            if self.notifier.watchdog_interval and not once:
                watchdog = threading.Thread(target=self._watchdog, name="controller-watchdog", daemon=True)
                watchdog.start()
            return self._loop(once=once)
        finally:
            self.notifier.stopping()
            self._stop_services()
            self.pool.close()
            self.store.release()

    def _start_services(self) -> None:
        self._watching = True
        address = self.config.listen_address
        if address is not None:
            self.http = ControlServer(address[0], address[1], metrics=self.metrics,
                                      secret=self.config.webhook_secret(self.environ),
                                      on_push=lambda _event: self.request_fetch(Trigger.WEBHOOK),
                                      healthy=self.alive, status=self.status_json)
            self.http.start()
            log.info("listening", address=f"{self.http.address[0]}:{self.http.address[1]}",
                     webhook=self.http.secret is not None)
        git_dir = local_git_dir(self.config.repo)
        if git_dir is not None and self.config.watch_local:
            self._repo_watcher = RepoWatcher(git_dir, lambda: self.request_fetch(Trigger.LOCAL_REPO))
            self._repo_watcher.start()
        if self.applied_spec is not None:
            self._update_watchers(self.applied_spec)

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

    def _recover(self) -> None:
        status = self.store.read_status() or ControllerStatus()
        status.repo, status.branch, status.path = self.config.repo, self.config.branch, self.config.path
        status.pid, status.version = os.getpid(), __version__
        self.status = status
        if self.store.repair_history():
            log.warning("trimmed a history line cut short by a crash", path=str(self.store.history_path))
        if status.in_flight is not None:
            log.warning("the controller stopped during a run; it is resumed",
                        revision=status.in_flight.revision, cause=status.in_flight.cause,
                        attempt=status.in_flight.attempts)
        self.metrics.quarantined.set(len(status.quarantined))
        if status.last_applied is not None:
            self.metrics.applied(status.last_applied.revision, self.config.branch)
            self.applied_spec = self._load_applied(status.last_applied.revision)
        self._save()

    def _load_applied(self, sha: str) -> LoadedSpec | None:
        try:
            tree = self.source.checkout(sha)
            spec, diags = load_spec(str(tree / self.config.path),
                                    default_stack=stack_name_in_repo(self.config.repo, self.config.path))
        except (GitSourceError, ProviderLoadError) as exc:
            log.warning("cannot load the applied revision; drift checks wait for the next apply",
                        revision=sha, error=str(exc))
            return None
        if spec is None:
            log.warning("the applied revision no longer loads; drift checks wait for the next apply",
                        revision=sha, errors=[str(d) for d in diags.errors])
        return spec

    # ------------------------------------------------------------------ the loop
    def _loop(self, *, once: bool) -> int:
        now = time.monotonic()
        next_fetch = now
        next_drift = now if once else now + self.config.drift_interval
        fetch_trigger: Trigger | None = Trigger.STARTUP
        errors_before = self.status.last_error
        while not self._stop.is_set():
            drift_trigger: Trigger | None = None
            if fetch_trigger is None:
                fetch_trigger, drift_trigger = self._wait(next_fetch, next_drift)
                if self._stop.is_set():
                    break
            self._heartbeat = time.monotonic()
            if fetch_trigger is not None or time.monotonic() >= next_fetch:
                self._guarded(self._fetch, fetch_trigger or Trigger.INTERVAL)
                next_fetch = time.monotonic() + self.config.interval
            self._guarded(self._sync, fetch_trigger or Trigger.INTERVAL)
            if drift_trigger is None and self._drift_blocked and self._drift_allowed()[0]:
                drift_trigger = Trigger.WINDOW  # a window opened over drift we had to leave alone
            if drift_trigger is not None or time.monotonic() >= next_drift:
                self._guarded(self._check_drift, drift_trigger or Trigger.DRIFT_INTERVAL)
                next_drift = time.monotonic() + self.config.drift_interval
            fetch_trigger = None
            self._heartbeat = time.monotonic()
            self.notifier.status(self._status_line())
            if once:
                failed = self.status.last_error is not None and self.status.last_error != errors_before
                return 1 if failed or self.status.retry is not None else 0
        return 0

    def _wait(self, next_fetch: float, next_drift: float) -> tuple[Trigger | None, Trigger | None]:
        """Sleep until a request or a timer is due; returns (fetch trigger, drift trigger)."""
        with self._cond:
            while not self._stop.is_set():
                now = time.monotonic()
                if self._want_fetch is not None:
                    break
                if self._want_drift is not None and now >= self._drift_not_before:
                    break
                if self.status.retry is not None and time.time() >= self.status.retry.next_at:
                    break
                deadline = min(next_fetch, next_drift, self._retry_due(now), self._window_due(now))
                if self._want_drift is not None:
                    deadline = min(deadline, self._drift_not_before)
                if now >= deadline:
                    break
                self._cond.wait(deadline - now)
            fetch, self._want_fetch = self._want_fetch, None
            drift: Trigger | None = None
            if self._want_drift is not None and time.monotonic() >= self._drift_not_before:
                drift, self._want_drift = self._want_drift, None
        if fetch is None and self.status.retry is not None and time.time() >= self.status.retry.next_at:
            fetch = Trigger.RETRY
        return fetch, drift

    def _retry_due(self, now: float) -> float:
        """When the pending retry is due, on the monotonic clock (``now`` is monotonic)."""
        if self.status.retry is None:
            return float("inf")
        return now + max(0.0, float(self.status.retry.next_at) - time.time())

    def _window_due(self, now: float) -> float:
        if self.status.pending is None and not self.status.pending_drift:
            return float("inf")
        decision = self._decide()
        if decision.next_change is None:
            return float("inf")
        return now + max(1.0, (decision.next_change - datetime.now(UTC)).total_seconds())

    def _guarded(self, step: Any, trigger: Trigger) -> None:
        """Run one step; a bug in it is logged and recorded, never fatal to the loop."""
        self._busy_since = time.monotonic()
        try:
            step(trigger)
        except Exception as exc:
            log.exception("controller step failed", step=step.__name__)
            self.metrics.failures.labels("internal").inc()
            self.status.last_error = ErrorRecord(self.head or "", utc_now(), "internal",
                                                 REDACTOR.scrub(f"{type(exc).__name__}: {exc}"))
            self.status.in_flight = None
            self._save()
        finally:
            self._busy_since = None

    def _save(self) -> None:
        self.store.write_status(self.status)
        self._snapshot = self.status.to_json()

    def _history(self, entry: dict[str, Any]) -> None:
        self.store.append_history(entry)

    def _decide(self) -> WindowDecision:
        return decide(self.config.sync_windows, datetime.now(UTC), self.config.zone)

    def _status_line(self) -> str:
        applied = self.status.last_applied
        text = f"applied {applied.revision[:12]}" if applied else "nothing applied yet"
        if self.status.last_error is not None:
            text += f"; last error on {self.status.last_error.revision[:12]}"
        return text

    # ------------------------------------------------------------------ fetching
    def _fetch(self, trigger: Trigger) -> None:
        try:
            sha = self.source.fetch()
        except GitSourceError as exc:
            self.metrics.failures.labels("fetch").inc()
            log.warning("fetch failed", trigger=trigger.value, error=str(exc))
            return
        if sha != self.head:
            log.info("new revision", revision=sha[:12], trigger=trigger.value)
            self.head = sha
            self.status.head = Revision(sha, at=utc_now())
            self._save()

    # ------------------------------------------------------------------ commits
    def _sync(self, trigger: Trigger) -> None:
        head = self.head
        if head is None:
            return
        applied = self.status.last_applied.revision if self.status.last_applied else None
        if head == applied:
            if self.applied_spec is None:
                # It could not be loaded at start (no clone yet); now the fetch made one.
                self.applied_spec = self._load_applied(head)
                if self.applied_spec is not None:
                    self._update_watchers(self.applied_spec)
            if self.status.pending is not None or self.status.retry is not None:
                self.status.pending = None
                self.status.retry = None
                self._save()
            return
        if head in self.status.quarantined:
            return
        retry = self.status.retry
        if retry is not None:
            if retry.revision != head:
                self.status.retry = None  # new input: try it at once
            elif time.time() < retry.next_at:
                return
            else:
                trigger = Trigger.RETRY
        pending = self.status.pending
        if pending is not None and pending.revision == head:
            if not self._decide().allowed:
                return  # already planned and reported; wait for the window
            trigger = Trigger.WINDOW
        self._apply_commit(head, trigger)

    def _entry(self, cause: Cause, sha: str, trigger: Trigger) -> dict[str, Any]:
        return {"time": utc_now(), "cause": cause.value,
                "intent": "intended change" if cause is Cause.COMMIT else "drift correction",
                "revision": sha, "trigger": trigger.value}

    def _apply_commit(self, sha: str, trigger: Trigger) -> None:
        started = time.monotonic()
        entry = self._entry(Cause.COMMIT, sha, trigger)
        try:
            info = self.source.info(sha)
            entry["commit"] = {"summary": info.summary, "author": info.author, "date": info.committed_at}
        except Exception as exc:  # informational only
            log.debug("no commit info", revision=sha, error=str(exc))
        flight = self.status.in_flight
        crashed = flight.attempts if flight is not None and flight.revision == sha else 0
        if crashed >= MAX_CRASHES:
            self._finish_refused(sha, entry, "controller", f"the controller stopped {crashed} times while "
                                 "applying this revision; it is quarantined", result=Result.FAILED)
            self.status.in_flight = None
            self._done(entry, started)
            return
        self.status.in_flight = InFlight(sha, Cause.COMMIT.value, utc_now(), crashed + 1)
        self.status.last_attempted = Revision(sha, at=utc_now())
        self._save()
        try:
            self._run_commit(sha, entry)
        finally:
            self.status.in_flight = None
            self._done(entry, started)

    def _done(self, entry: dict[str, Any], started: float) -> None:
        seconds = time.monotonic() - started
        entry["seconds"] = round(seconds, 3)
        self.metrics.runs.labels(entry["cause"], entry["result"]).inc()
        self.metrics.run_duration.labels(entry["cause"]).observe(seconds)
        self.metrics.last_run_time.set(time.time())
        self.metrics.quarantined.set(len(self.status.quarantined))
        self.metrics.pending_drift.set(len(self.status.pending_drift))
        self._history(entry)
        self._save()
        keep = {self.status.last_applied.revision} if self.status.last_applied else set()
        if self.status.pending is not None:
            keep.add(self.status.pending.revision)
        try:
            self.source.prune_worktrees(keep)
        except Exception as exc:  # a stale worktree only costs disk
            log.debug("worktree cleanup failed", error=str(exc))
        ok = entry["result"] in (Result.APPLIED, Result.UNCHANGED, Result.DEFERRED)
        log.log(logging.INFO if ok else logging.ERROR, f"{entry['cause']} {entry['result']}",
                revision=entry["revision"][:12], error=entry.get("error") or None, seconds=entry["seconds"])

    def _run_commit(self, sha: str, entry: dict[str, Any]) -> None:
        if self.config.require_signed:
            check = self.source.verify(sha, allowed_signers=self.config.allowed_signers,
                                       gpg_home=self.config.gpg_home)
            entry["signature"] = {"ok": check.ok, "detail": check.detail}
            if not check.ok:
                self._finish_refused(sha, entry, "signature",
                                     f"commit {sha[:12]} refused: signature check failed: {check.detail}")
                return
        try:
            tree = self.source.checkout(sha)
            spec, diags = load_spec(str(tree / self.config.path),
                                    default_stack=stack_name_in_repo(self.config.repo, self.config.path))
        except GitSourceError as exc:
            self._finish_refused(sha, entry, "checkout", str(exc))
            return
        except ProviderLoadError as exc:
            # The installation is broken, not the commit: retry it once that is fixed.
            self._finish_retry(sha, entry, "plan", str(exc))
            return
        if spec is None:
            errors = [d for d in relative_diagnostics(diags, tree) if d.severity.value == "error"]
            text = "\n".join(str(d) for d in errors)
            message = (f"commit {sha[:12]} refused: {len(errors)} error(s) in the spec; "
                       f"nothing was changed:\n{text}")
            self._finish_refused(sha, entry, "spec", message, diagnostics=[d.to_json() for d in errors])
            return

        decision = self._decide()
        if not decision.allowed:
            result = self.runner.plan(spec, sha)
            entry.update(result=Result.DEFERRED.value, reason=decision.reason)
            if result.plan is not None:
                entry.update(summary=result.plan.summary(), changes=plan_changes(result.plan))
            if result.error:
                entry["error"] = result.error
            self.status.pending = Revision(sha, at=utc_now(), summary=entry.get("summary", {}),
                                           result=Result.DEFERRED.value, message=decision.reason)
            return

        result = self.runner.apply(spec, sha)
        if result.plan is not None:
            entry.update(summary=result.plan.summary(), changes=plan_changes(result.plan))
        if not result.ok:
            stage = "apply" if result.report is not None else "plan"
            if result.transient:
                self._finish_retry(sha, entry, stage, result.error)
            elif result.report is None:
                # Planning failed: nothing was changed, so there is nothing to roll back.
                self._finish_refused(sha, entry, stage, f"commit {sha[:12]} failed to plan: {result.error}",
                                     result=Result.FAILED)
            else:
                self._finish_rollback(sha, entry, stage, f"commit {sha[:12]} failed to apply: {result.error}",
                                      result)
            return
        health = self.runner.health(spec, sha, self.config.health, stop=self._stop.is_set)
        entry["health"] = [h.to_json() for h in health]
        self.status.health = entry["health"]
        if not all(h.ok for h in health):
            bad = "; ".join(f"{h.host}: {h.check}: {h.detail}" for h in health if not h.ok)
            self._finish_rollback(sha, entry, "health", f"commit {sha[:12]} is unhealthy after "
                                  f"{self.config.health.grace:g} s: {bad}", result)
            return
        self._finish_applied(sha, spec, entry, result)

    def _finish_applied(self, sha: str, spec: LoadedSpec, entry: dict[str, Any], result: RunResult) -> None:
        outcome = Result.APPLIED if result.applied_changes else Result.UNCHANGED
        entry["result"] = outcome.value
        summary = result.plan.summary() if result.plan else {}
        self.status.last_applied = Revision(sha, at=utc_now(), summary=summary, result=outcome.value)
        self.status.last_error = None
        self.status.pending = None
        self.status.retry = None
        self.status.pending_drift = []
        self.status.resources = resource_health(spec, result.plan, result.report)
        self.applied_spec = spec
        self.metrics.applied(sha, self.config.branch)
        self._update_watchers(spec)

    def _finish_refused(self, sha: str, entry: dict[str, Any], stage: str, message: str, *,
                        diagnostics: list[dict[str, object]] | None = None,
                        result: Result = Result.REFUSED) -> None:
        entry.update(result=result.value, stage=stage, error=message)
        if diagnostics:
            entry["diagnostics"] = diagnostics
        self.status.quarantine(sha, f"{stage}: {message.splitlines()[0]}")
        self.status.last_error = ErrorRecord(sha, utc_now(), stage, message, list(diagnostics or []))
        self.status.retry = None
        self.metrics.failures.labels(stage).inc()

    def _finish_retry(self, sha: str, entry: dict[str, Any], stage: str, message: str) -> None:
        previous = self.status.retry
        attempt = previous.attempt + 1 if previous is not None and previous.revision == sha else 1
        delay = backoff_delay(attempt, self.config.backoff_base, self.config.backoff_max, self._rng)
        self.status.retry = RetryState(sha, attempt, time.time() + delay, message)
        entry.update(result=Result.RETRYING.value, stage=stage, error=message, attempt=attempt,
                     retry_in=round(delay, 1))
        self.metrics.failures.labels("transient").inc()

    def _finish_rollback(self, sha: str, entry: dict[str, Any], stage: str, message: str,
                         failed: RunResult) -> None:
        self.metrics.failures.labels(stage).inc()
        self.status.quarantine(sha, f"{stage}: {message.splitlines()[0]}")
        self.status.retry = None
        good = self.status.last_applied
        if good is None or self.applied_spec is None:
            entry.update(result=Result.FAILED.value, stage=stage, error=message,
                         rollback={"attempted": False,
                                   "detail": "no earlier revision was applied by this controller; "
                                             "the hosts stay as the failed run left them"})
            self.status.last_error = ErrorRecord(sha, utc_now(), stage, message)
            self.status.resources = resource_health(self.applied_spec, failed.plan, failed.report) \
                if self.applied_spec else self.status.resources
            return
        log.warning("rolling back", failed=sha[:12], to=good.revision[:12], reason=message)
        rolled = self.runner.apply(self.applied_spec, good.revision)
        rollback: dict[str, Any] = {"attempted": True, "revision": good.revision, "ok": rolled.ok,
                                    "changes": plan_changes(rolled.plan) if rolled.plan else []}
        if rolled.error:
            rollback["error"] = rolled.error
            self.metrics.failures.labels("rollback").inc()
        self.metrics.runs.labels("rollback", "applied" if rolled.ok else "failed").inc()
        outcome = Result.ROLLED_BACK if rolled.ok else Result.FAILED
        entry.update(result=outcome.value, stage=stage, error=message, rollback=rollback)
        note = f"; rolled back to {good.revision[:12]}" if rolled.ok else \
            f"; the rollback to {good.revision[:12]} failed too: {rolled.error}"
        self.status.last_error = ErrorRecord(sha, utc_now(), stage, message + note)
        self.status.resources = resource_health(self.applied_spec, rolled.plan, rolled.report)

    # ------------------------------------------------------------------ drift
    def _update_watchers(self, spec: LoadedSpec) -> None:
        if not self._watching or not self.config.watch_events or self._stop.is_set():
            return
        local_hosts = [name for name, host in spec.hosts.items() if host.connect == "local"]
        self._path_watcher.set_paths(managed_paths(spec, local_hosts))
        self._docker_watcher.set_spec(spec)
        self._service_watcher.set_spec(spec)

    def _drift_allowed(self) -> tuple[bool, str]:
        policy = self.config.drift_correction
        if policy is DriftCorrection.NEVER:
            return False, "drift_correction is never"
        if policy is DriftCorrection.ALWAYS:
            return True, "drift_correction is always"
        decision = self._decide()
        return decision.allowed, decision.reason

    def _check_drift(self, trigger: Trigger) -> None:
        applied = self.status.last_applied
        spec = self.applied_spec
        if applied is None or spec is None:
            return
        retry = self.status.retry
        if retry is not None and retry.revision != applied.revision:
            return  # a newer commit is half-way and will be retried; do not pull the hosts back
        started = time.monotonic()
        self._drift_blocked = False
        found = self.runner.plan(spec, applied.revision)
        self.status.last_drift_check = utc_now()
        if not found.ok or found.plan is None:
            self.metrics.failures.labels("drift-plan").inc()
            log.warning("drift check failed", trigger=trigger.value, error=found.error,
                        transient=found.transient)
            self.status.resources = resource_health(spec, found.plan)
            self._save()
            return
        self.status.resources = resource_health(spec, found.plan)
        if not found.plan.has_changes:
            self._drift_streak = 0
            self._drift_not_before = 0.0
            if self.status.pending_drift:
                self.status.pending_drift = []
                self.metrics.pending_drift.set(0)
            self._save()
            return
        changes = plan_changes(found.plan)
        allowed, reason = self._drift_allowed()
        if not allowed:
            self._drift_blocked = True
            digest = hashlib.sha256(json.dumps(changes, sort_keys=True, default=str).encode()).hexdigest()
            self.status.pending_drift = changes
            self.metrics.pending_drift.set(len(changes))
            if digest != self._reported_drift:
                # Report each distinct drift once, not on every check.
                self._reported_drift = digest
                entry = self._entry(Cause.DRIFT, applied.revision, trigger)
                entry.update(result=Result.DETECTED.value, reason=reason, changes=changes)
                self.metrics.drift_events.labels("detected").inc(len(changes))
                self._done_drift(entry, started)
            else:
                self._save()
            return
        self._correct_drift(spec, applied.revision, trigger, changes, started)

    def _correct_drift(self, spec: LoadedSpec, revision: str, trigger: Trigger, found: list[dict[str, Any]],
                       started: float) -> None:
        self.status.in_flight = InFlight(revision, Cause.DRIFT.value, utc_now())
        self._save()
        try:
            result = self.runner.apply(spec, revision)
        finally:
            self.status.in_flight = None
        self._drift_blocked = False
        if result.ok and result.plan is not None and not result.plan.has_changes:
            self._save()
            return  # the drift went away before we held the lock
        changes = plan_changes(result.plan) if result.plan is not None and result.plan.has_changes else found
        entry = self._entry(Cause.DRIFT, revision, trigger)
        entry["changes"] = changes
        if result.ok:
            entry["result"] = Result.CORRECTED.value
            self.status.pending_drift = []
            self.metrics.drift_events.labels("corrected").inc(len(changes))
        else:
            entry.update(result=Result.FAILED.value, error=result.error, transient=result.transient)
            self.status.pending_drift = changes
            self.metrics.drift_events.labels("failed").inc(len(changes))
            self.metrics.failures.labels("drift").inc()
        self.status.resources = resource_health(spec, result.plan, result.report)
        # Someone (or something) fighting us: space event-driven checks out, up to the interval.
        self._drift_streak += 1
        gap = 0.0 if self._drift_streak <= 1 else \
            min(self.config.drift_interval, 2.0 ** (self._drift_streak - 1))
        self._drift_not_before = time.monotonic() + gap
        self._reported_drift = ""
        self._done_drift(entry, started)

    def _done_drift(self, entry: dict[str, Any], started: float) -> None:
        seconds = time.monotonic() - started
        entry["seconds"] = round(seconds, 3)
        self.metrics.runs.labels(entry["cause"], entry["result"]).inc()
        self.metrics.run_duration.labels(entry["cause"]).observe(seconds)
        self.metrics.last_run_time.set(time.time())
        self.metrics.pending_drift.set(len(self.status.pending_drift))
        self._history(entry)
        self._save()
        level = logging.ERROR if entry["result"] == Result.FAILED else logging.WARNING
        log.log(level, f"drift {entry['result']}", revision=entry["revision"][:12],
                changes=entry["changes"], error=entry.get("error") or None)
