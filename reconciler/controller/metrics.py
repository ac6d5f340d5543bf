"""Prometheus metrics of the controller, in a registry of its own (no process-wide globals)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from reconciler.controller.hostview import HostView
from reconciler.controller.records import JobRecord

CONTENT_TYPE = CONTENT_TYPE_LATEST
RESOURCE_STATES = ("ok", "differs", "failed", "unknown")

# Applies over SSH take from a fraction of a second to minutes (image pulls).
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))
# From a commit to its apply: seconds (a webhook) to days (a deferred commit waiting for its window).
_LATENCY_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400,
                    float("inf"))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter("reconciler_controller_runs", "Controller runs by cause and result.",
                            ["cause", "result"], registry=self.registry)
        self.run_duration = Histogram("reconciler_controller_run_duration_seconds",
                                      "Duration of controller runs (plan, apply and health checks).",
                                      ["cause"], buckets=_DURATION_BUCKETS, registry=self.registry)
        self.drift_events = Counter("reconciler_controller_drift_events",
                                    "Resources found drifted from the applied revision, by outcome.",
                                    ["outcome"], registry=self.registry)
        self.failures = Counter("reconciler_controller_failures",
                                "Failures by stage (fetch, signature, spec, plan, apply, health, rollback).",
                                ["stage"], registry=self.registry)
        self.last_applied = Info("reconciler_controller_last_applied",
                                 "The revision last applied successfully.", registry=self.registry)
        self.last_applied_time = Gauge("reconciler_controller_last_applied_timestamp_seconds",
                                       "When the last successful apply finished (Unix time).",
                                       registry=self.registry)
        self.last_run_time = Gauge("reconciler_controller_last_run_timestamp_seconds",
                                   "When the last run of any kind finished (Unix time).",
                                   registry=self.registry)
        self.pending_drift = Gauge("reconciler_controller_pending_drift",
                                   "Drifted resources found and not (yet) corrected.", registry=self.registry)
        self.quarantined = Gauge("reconciler_controller_quarantined_revisions",
                                 "Revisions refused or rolled back, which are not retried.",
                                 registry=self.registry)
        self.commit_latency = Histogram("reconciler_controller_commit_to_applied_seconds",
                                        "From a commit's date to its apply found healthy.",
                                        buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.notifications = Counter("reconciler_controller_notifications",
                                     "Notices and commit statuses by target and how they ended (sent, "
                                     "failed, dropped, held by the rate limit).", ["target", "result"],
                                     registry=self.registry)
        self.host_last_result = Gauge("reconciler_controller_host_last_result",
                                      "1 for the result of the newest run that touched the host.",
                                      ["host", "result"], registry=self.registry)
        self.host_pending_drift = Gauge("reconciler_controller_host_pending_drift",
                                        "Resources of the host found drifted and not (yet) corrected.",
                                        ["host"], registry=self.registry)
        self.host_resources = Gauge("reconciler_controller_host_resources",
                                    "Managed resources of the host by state (ok, differs, failed, unknown).",
                                    ["host", "state"], registry=self.registry)
        self.host_applied = Gauge("reconciler_controller_host_applied_info",
                                  "1, labelled with the revision last applied to the host.",
                                  ["host", "revision"], registry=self.registry)
        self._host_series: set[tuple[str, tuple[str, ...]]] = set()
        self.job_results = Counter("reconciler_controller_job_results",
                                   "New results of scheduled host jobs (backups, offsite copies, restore "
                                   "drills) the controller found, by result (ok, failed).",
                                   ["host", "job_name", "resource", "result"], registry=self.registry)
        self.job_last_result = Gauge("reconciler_controller_job_last_result",
                                     "1 when the last run of a scheduled host job succeeded, 0 when it "
                                     "failed.",
                                     ["host", "job_name", "resource"], registry=self.registry)
        self.job_last_finished = Gauge("reconciler_controller_job_last_finished_timestamp_seconds",
                                       "When the last run of a scheduled host job ended (Unix time, "
                                       "host clock).",
                                       ["host", "job_name", "resource"], registry=self.registry)
        self._job_series: set[tuple[str, str, str]] = set()

    def applied(self, revision: str, branch: str, at: float | None = None) -> None:
        self.last_applied.info({"revision": revision, "branch": branch})
        self.last_applied_time.set(at if at is not None else time.time())

    def committed_to_applied(self, seconds: float) -> None:
        if seconds >= 0:
            self.commit_latency.observe(seconds)

    def hosts(self, views: Iterable[HostView]) -> None:
        """Set the per-host series; those of hosts (or results, revisions) gone are removed."""
        gauges = {"result": self.host_last_result, "drift": self.host_pending_drift,
                  "resources": self.host_resources, "applied": self.host_applied}
        series: set[tuple[str, tuple[str, ...]]] = set()
        for view in views:
            if view.last is not None:
                self.host_last_result.labels(view.host, view.last.result).set(1)
                series.add(("result", (view.host, view.last.result)))
            self.host_pending_drift.labels(view.host).set(len(view.pending_drift))
            series.add(("drift", (view.host,)))
            for state in RESOURCE_STATES:
                self.host_resources.labels(view.host, state).set(view.count(state))
                series.add(("resources", (view.host, state)))
            if view.applied:
                self.host_applied.labels(view.host, view.applied).set(1)
                series.add(("applied", (view.host, view.applied)))
        for name, labels in self._host_series - series:
            gauges[name].remove(*labels)
        self._host_series = series

    def jobs(self, last: Iterable[JobRecord]) -> None:
        """Set the per-job series from the last result seen of each job (kept in the
        status, so they are back after a restart); jobs no longer seen are removed.
        The job's label is ``job_name``: Prometheus gives every scraped series a
        ``job`` label of its own (the scrape job)."""
        series: set[tuple[str, str, str]] = set()
        for job in last:
            labels = (job.host, job.job, job.address)
            self.job_last_result.labels(*labels).set(1 if job.ok else 0)
            self.job_last_finished.labels(*labels).set(job.finished_at)
            series.add(labels)
        for labels in self._job_series - series:
            self.job_last_result.remove(*labels)
            self.job_last_finished.remove(*labels)
        self._job_series = series

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
