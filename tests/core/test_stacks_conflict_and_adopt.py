"""Declaring an object another stack owns is refused at plan time naming both stacks
(and nothing is changed); ``adopt:`` shows the handover in the plan and moves the
object at apply, keeping whether the reconciler created it; the old owner then neither
takes it back nor prunes it, and the new owner prunes it when it leaves its spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.core.stacks_support import monitoring, servqr, write
from tests.support.harness import cat, exists, owners, reconcile


@pytest.mark.timeout(900)
def test_declaring_another_stacks_object_is_refused_until_adopted(fresh_host: TestHost,
                                                                  tmp_path: Path) -> None:
    host = fresh_host
    app = write(tmp_path / "servqr", host, servqr())
    reconcile("apply", app, check_code=0)
    shared = {"path": "/etc/servqr/shared.conf", "content": "owner=monitoring\n"}

    # Declared without adopt: refused at plan time, naming both stacks; nothing changes.
    mon = write(tmp_path / "mon", host, monitoring([shared]))
    for command in ("plan", "apply"):
        proc = reconcile(command, mon, check_code=1)
        assert ("Error: host web: stack monitoring declares files:/etc/servqr/shared.conf, owned by stack "
                "servqr; remove it from one of the specs, or list it under `adopt:` in stack monitoring's "
                "spec to take it over") in proc.stdout, proc.stdout
    assert cat(host, "/etc/servqr/shared.conf") == "owner=servqr\n"
    assert not exists(host, "/opt/monitoring")

    # adopt: the plan shows the handover, apply moves it (keeping "created").
    mon = write(tmp_path / "mon", host, monitoring([shared], adopt=["files:/etc/servqr/shared.conf"]))
    proc = reconcile("plan", mon, "--detailed-exitcode", check_code=2)
    assert ("» ownership on web: files:/etc/servqr/shared.conf: moves from stack servqr to stack monitoring "
            "(adopt)") in proc.stdout
    reconcile("apply", mon, check_code=0)
    assert cat(host, "/etc/servqr/shared.conf") == "owner=monitoring\n"
    assert owners(host)["files:/etc/servqr/shared.conf"] == {"stack": "monitoring", "created": True}

    # The old owner still declaring it is now the one refused; it does not take it back.
    proc = reconcile("plan", app, check_code=1)
    assert ("stack servqr declares files:/etc/servqr/shared.conf, owned by stack monitoring") in proc.stdout
    # Once servqr's spec lets go, servqr has nothing to do: it does not prune monitoring's file.
    write(tmp_path / "servqr", host, servqr(shared=False))
    reconcile("plan", app, "--detailed-exitcode", check_code=0)
    reconcile("apply", app, check_code=0)
    assert cat(host, "/etc/servqr/shared.conf") == "owner=monitoring\n"
    # ...and monitoring, which owns it now (created by the reconciler), prunes it when it leaves.
    write(tmp_path / "mon", host, monitoring())
    proc = reconcile("apply", mon, check_code=0)
    assert "files:/etc/servqr/shared.conf (delete)" in proc.stdout
    assert not exists(host, "/etc/servqr/shared.conf")
    assert "files:/etc/servqr/shared.conf" not in owners(host)
