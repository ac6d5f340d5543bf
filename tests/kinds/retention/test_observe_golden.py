"""Observation of retention rules, from real ``OBSERVE_SH`` output captured on a test
host (files over count and age limits, a file newer than the reference time, a name
with a tab, a symlinked directory, a rule that left the spec), to states and plan
fields: one field per file, named by its path."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler_providers.retention.provider import RetentionProvider, RetentionRule, parse_observation

from reconciler.plan import Action
from reconciler.provider import HostContext
from reconciler.transport import LocalTransport

FIXTURES = Path(__file__).parents[2] / "kinds" / "backups" / "fixtures"
IDS = ["app-logs", "linked", "old-rule"]
OFFLINE = HostContext("web", LocalTransport("web"))  # desired() runs no command


def observed() -> tuple[int | None, dict[str, object]]:
    text = (FIXTURES / "retention-observe-output.txt").read_text()
    return parse_observation(text, IDS, {"app-logs", "linked"})


def test_observation_output_parses_to_states() -> None:
    now, states = observed()
    golden = json.loads((FIXTURES / "retention-observe-state.json").read_text())
    assert {"now": now, "states": states} == golden


def test_plan_fields_name_each_file_over_the_limits() -> None:
    _, states = observed()
    actual = states["app-logs"]
    assert isinstance(actual, dict)
    provider = RetentionProvider()
    rule = RetentionRule.model_validate({"name": "app-logs", "path": "/var/log/app", "glob": "*.log",
                                         "max_age": "14d", "max_count": 2})
    fields = provider.compare(provider.desired(rule, OFFLINE), actual)
    # (The script hash also differs whenever the script template changes; not this test's concern.)
    assert [(f.path, f.old, f.new) for f in fields if f.path.startswith("over_limits.")] == [
        ("over_limits./var/log/app/c.log",
         {"modified": "2026-01-07T12:00:00Z", "size": 6, "over": "max_count"}, None),
        ("over_limits./var/log/app/old.log",
         {"modified": "2025-12-11T12:00:00Z", "size": 8, "over": "max_age"}, None),
        ("over_limits./var/log/app/with\ttab.log",
         {"modified": "2025-12-01T00:00:00Z", "size": 1, "over": "max_age"}, None),
    ]
    assert provider.action_for(fields) is Action.UPDATE


def test_a_rule_not_yet_installed_is_a_create_and_a_broken_path_is_shown() -> None:
    _, states = observed()
    actual = states["linked"]
    assert isinstance(actual, dict)
    provider = RetentionProvider()
    rule = RetentionRule.model_validate({"name": "linked", "path": "/var/log/linked", "max_count": 1})
    fields = provider.compare(provider.desired(rule, OFFLINE), actual)
    assert provider.action_for(fields) is Action.CREATE
    [problem] = [f for f in fields if f.path == "problem"]
    assert "symbolic link" in problem.old and problem.new is None
