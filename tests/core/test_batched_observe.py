"""Observation is batched: the number of remote commands a plan runs on a host does
not grow with the number of resources (one command per kind, plus the inventory).

Counted by the engine's transports (``Engine.commands_run()``), over real SSH, for
10 and 200 files, both when the files are all there (a no-op plan) and when none
is (all creates).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.engine import Engine
from reconciler.spec import load_spec
from testbed.hosts import TestHost
from tests.support.harness import write_spec


def plan_commands(spec_dir: Path) -> tuple[int, int]:
    """(remote commands, planned changes) of one plan of the spec."""
    spec, diags = load_spec(str(spec_dir))
    assert spec is not None, [str(d) for d in diags.items]
    with Engine(spec) as engine:
        plan = engine.plan()
        assert not plan.has_errors, [h.error for h in plan.hosts]
        return engine.commands_run()["web"], len(plan.changes)


def spec_of(tmp_path: Path, host: TestHost, n: int) -> Path:
    files = [{"path": f"/srv/batch{n}/f{i}", "content": f"{i}\n"} for i in range(n)]
    return write_spec(tmp_path / f"spec{n}", {"web": host},
                      {"directories": [{"path": f"/srv/batch{n}"}], "files": files})


@pytest.mark.timeout(300)
def test_commands_are_constant_in_the_number_of_files(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    counts: dict[tuple[int, str], int] = {}
    for n in (10, 200):
        spec = spec_of(tmp_path, host, n)
        commands, changes = plan_commands(spec)
        assert changes == n + 1
        counts[(n, "absent")] = commands
        # Make the host match the spec without the reconciler (fast), then plan again.
        host.exec(f"mkdir -p /srv/batch{n} && "
                  f"for i in $(seq 0 {n - 1}); do echo $i > /srv/batch{n}/f$i; done")
        commands, changes = plan_commands(spec)
        assert changes == 0
        counts[(n, "present")] = commands

    assert counts[(10, "present")] == counts[(200, "present")], counts
    assert counts[(10, "absent")] == counts[(200, "absent")], counts
    # Inventory + one batch per kind with resources (directories, files).
    assert counts[(200, "present")] <= 3, counts
