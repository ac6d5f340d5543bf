"""Parsing what the nginx observation prints, golden-tested: each
tests/kinds/nginx/fixtures/observe/NAME.txt is the real output of ``nginx_host.OBSERVE`` on a
test host (the arguments are in NAME.json), and NAME.json holds the site states and
unmanaged sites the provider must derive from it.

Regenerate the expectations with ``RECONCILER_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from reconciler_providers.nginx.host import Layout, parse_observation
from reconciler_providers.nginx.provider import site_states

FIXTURES = Path(__file__).parent / "fixtures" / "observe"
CASES = sorted(p.stem for p in FIXTURES.glob("*.txt"))


def derive(case: str, expected: dict[str, Any]) -> dict[str, Any]:
    facts = parse_observation((FIXTURES / f"{case}.txt").read_text())
    return {
        "ids": expected["ids"],
        "installed": facts.installed,
        "layout": facts.layout.value,
        "running": facts.running,
        "states": site_states(facts, expected["ids"]),
        "unmanaged": [f.path for f in facts.enabled_files if not f.owned],
        "default_servers": [f.path for f in facts.enabled_files if f.default_server],
    }


@pytest.mark.parametrize("case", CASES)
def test_observation_parses_to_golden_states(case: str) -> None:
    path = FIXTURES / f"{case}.json"
    expected = json.loads(path.read_text())
    got = derive(case, expected)
    if os.environ.get("RECONCILER_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=2) + "\n")
        expected = got
    assert got == expected


def test_fixtures_exist() -> None:
    assert {"debian_layout", "confd_layout"} <= set(CASES)


def test_not_installed_means_every_site_is_absent() -> None:
    facts = parse_observation("installed\tno\nlayout\tconfd\nservice\tinactive\n")
    assert not facts.installed and facts.layout is Layout.CONF_D
    assert site_states(facts, ["a", "b"]) == {"a": None, "b": None}


def test_garbage_lines_are_skipped() -> None:
    facts = parse_observation("installed\tyes\nsite\ttoo\tfew\nlayout\tweird\nwhatever\n")
    assert facts.installed and facts.sites == {} and facts.layout is Layout.DEBIAN


def test_secret_bearing_site_hash_is_sensitive() -> None:
    facts = parse_observation((FIXTURES / "confd_layout.txt").read_text())
    state = site_states(facts, ["site0"], {"site0"})["site0"]
    assert state is not None and repr(state["content"]) == "(sensitive)"
