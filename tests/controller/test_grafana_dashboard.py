"""The Grafana dashboard in docs/ (for the seed's Prometheus and Grafana) is valid
JSON Grafana imports: every panel queries the Prometheus data source chosen at
import, and every metric it names is one the controller exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from reconciler.controller.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "reconciler-controller.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "info": ("_info",), "gauge": ("",)}


def exported() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"]]
    return exprs


def test_the_dashboard_queries_only_what_the_controller_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for expr in queries(dashboard) for name in re.findall(r"reconciler_controller_\w+", expr)}
    assert used and not used - exported()
    # The per-host series, the latency histogram and the notifications are on it.
    for name in ("host_last_result", "host_pending_drift", "host_applied_info",
                 "commit_to_applied_seconds_bucket", "notifications_total", "runs_total"):
        assert f"reconciler_controller_{name}" in used


def test_every_panel_uses_the_data_source_picked_at_import() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "reconciler-controller" and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"])
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
