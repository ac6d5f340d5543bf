"""Paths travel inside the request, never on a command line: a plan of a spec whose
files have 10,000 paths of over 100 characters works over SSH (before the host agent,
3,000 such paths failed with ``Argument list too long``) and costs a constant number
of requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.engine import Engine
from reconciler.spec import load_spec
from testbed.hosts import TestHost
from tests.support.harness import write_spec

N = 10_000
BASE = "/srv/" + "long-directory-name-" * 3


@pytest.mark.timeout(900)
def test_plan_of_ten_thousand_long_paths(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    files = [{"path": f"{BASE}/{'file-with-a-long-name-' * 2}{i:05d}.conf", "content": f"{i}\n"}
             for i in range(N)]
    assert all(len(f["path"]) > 100 for f in files)
    host.exec(f"mkdir -p {BASE} && cd {BASE} && for i in $(seq 0 99); do "
              f"printf '%d\\n' $i > \"{'file-with-a-long-name-' * 2}$(printf %05d $i).conf\"; done")
    spec_dir = write_spec(tmp_path / "spec", {"web": host}, {"files": files})
    spec, diags = load_spec(str(spec_dir))
    assert spec is not None, [str(d) for d in diags.items]
    with Engine(spec) as engine:
        plan = engine.plan()
        assert not plan.has_errors, [h.error for h in plan.hosts]
        assert len(plan.changes) == N - 100  # the first 100 are there already, as the spec says
        assert engine.commands_run()["web"] <= 3
