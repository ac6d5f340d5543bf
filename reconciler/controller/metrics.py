"""Prometheus metrics of the controller, in a registry of its own (no process-wide globals)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Applies over SSH take from a fraction of a second to minutes (image pulls).
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))


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

    def applied(self, revision: str, branch: str, at: float | None = None) -> None:
        self.last_applied.info({"revision": revision, "branch": branch})
        self.last_applied_time.set(at if at is not None else time.time())

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
