"""A pooled host connection is replaced between runs once it has run its share of
commands (paramiko never forgets a channel a connection opened: paramiko#1685), and
not before; the replacement works. Real local transport, real commands."""

from __future__ import annotations

from pathlib import Path

from reconciler.controller.transports import TransportPool
from reconciler.spec import load_spec


def test_a_worn_connection_is_replaced_between_runs(tmp_path: Path) -> None:
    (tmp_path / "hosts.yaml").write_text("hosts:\n  here:\n    connect: local\n")
    spec, diags = load_spec(str(tmp_path))
    assert spec is not None, diags
    pool = TransportPool(recycle_after=5)
    try:
        first = pool.for_spec(spec)["here"]
        # Up to one short of the limit (the host agent's start counts as one request too).
        while first.inner.commands_run < 4:
            first.run(["true"])
        assert first.inner.commands_run == 4
        assert pool.for_spec(spec)["here"] is first  # not worn yet
        first.run(["true"])
        second = pool.for_spec(spec)["here"]
        assert second is not first and second.inner is not first.inner
        assert second.run(["echo", "still here"]).out == "still here\n"
    finally:
        pool.close()
