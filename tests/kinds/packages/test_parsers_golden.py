"""The apt/dpkg parsers against output captured from a bare test host (Debian 12):
``OBSERVE`` for installed, held, removed-with-config-files, never-installed, unknown,
purely virtual and multi-arch names; an ``apt-get -s`` removal; apt's messages for a
held lock and unknown names. Fixtures: tests/kinds/packages/fixtures/."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from reconciler_providers.packages.apt import explain_apt_failure, parse_observation, simulated_removals

FIXTURES = Path(__file__).parent / "fixtures"


def test_observation_parses_to_the_golden_facts() -> None:
    facts = parse_observation((FIXTURES / "observe-bookworm.txt").read_text())
    got = {"arch": facts.arch, "now": facts.now, "updated": facts.updated,
           "prune_marked": sorted(facts.prune_marked),
           "dpkg": {k: [dataclasses.asdict(e) for e in v] for k, v in sorted(facts.dpkg.items())},
           "policy": {k: {**dataclasses.asdict(p), "versions": list(p.versions)}
                      for k, p in sorted(facts.policy.items())}}
    assert got == json.loads((FIXTURES / "observe-bookworm.json").read_text())
    assert facts.lists_age() == 1796155157 - 1796154166
    assert facts.entry("sl") is not None and facts.entry("sl").held  # type: ignore[union-attr]
    assert facts.entry("libc6:i386") is None and "libc6:i386" not in facts.policy


def test_simulated_removals_lists_every_package_apt_would_remove() -> None:
    assert simulated_removals((FIXTURES / "simulate-remove.txt").read_text()) == ["curl", "libcurl4", "sl"]


def test_a_held_lock_names_its_holder_and_the_wait() -> None:
    message = explain_apt_failure((FIXTURES / "lock-held.txt").read_text(), "web", 3)
    assert message.startswith("the dpkg lock on host web is held by process 1289 (python3)")
    assert "waited 3 s (lock_timeout)" in message


def test_unknown_names_and_versions_are_named() -> None:
    assert explain_apt_failure((FIXTURES / "unknown-package.txt").read_text(), "web", 300) == (
        "package nginxx is not known to apt on host web; version 0.1 of nginx is not available on host web")
