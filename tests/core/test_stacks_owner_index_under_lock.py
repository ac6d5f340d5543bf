"""The owner index is only written under the host lock, so two stacks' runs cannot
interleave their writes: while one holds the lock the other's apply waits (and gives
up with LockBusy), and a plan made without the lock is refused at apply when another
stack's apply changed who owns what in between."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.engine import Engine, RunOptions
from reconciler.spec import load_spec
from testbed.hosts import TestHost
from tests.support.harness import cat, owners, reconcile, write_spec


@pytest.mark.timeout(600)
def test_owner_index_written_only_under_the_lock(fresh_host: TestHost, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    host = fresh_host
    monkeypatch.setenv("HOME", str(tmp_path))  # the in-process runs read ~/.ssh/config: not the machine's
    first = write_spec(tmp_path / "first", {"web": host},
                       {"files": [{"path": "/srv/a.conf", "content": "a\n"}]})
    second = write_spec(tmp_path / "second", {"web": host},
                        {"files": [{"path": "/srv/b.conf", "content": "b\n"}]})
    spec, diags = load_spec(str(first))
    assert spec is not None and spec.stack == "first", diags.items

    # A run holding the lock: the other stack's apply cannot write meanwhile.
    with Engine(spec, RunOptions(lock_wait=5)) as engine:
        engine.plan(lock=True)
        proc = reconcile("apply", second, "--lock-timeout", "1", check_code=1)
        assert "another reconciler run holds the lock on web" in proc.stdout
        assert engine.apply().ok
    assert owners(host) == {"files:/srv/a.conf": {"stack": "first", "created": True}}

    # A plan made without the lock, then another stack applies: the stale plan is refused.
    write_spec(tmp_path / "first", {"web": host}, {"files": [{"path": "/srv/a.conf", "content": "a2\n"}]})
    spec, _ = load_spec(str(first))
    assert spec is not None
    with Engine(spec) as engine:
        assert len(engine.plan().changes) == 1
        reconcile("apply", second, check_code=0)
        report = engine.apply()
        assert not report.ok
        assert ("who owns what on this host changed since the plan (another stack applied in between); "
                "plan again") in report.hosts[0].error
    assert cat(host, "/srv/a.conf") == "a\n"  # nothing applied from the stale plan
    reconcile("apply", first, check_code=0)
    assert cat(host, "/srv/a.conf") == "a2\n" and cat(host, "/srv/b.conf") == "b\n"
    assert {a: o["stack"] for a, o in owners(host).items()} == {"files:/srv/a.conf": "first",
                                                                "files:/srv/b.conf": "second"}
