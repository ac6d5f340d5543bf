"""A bug inside a provider (an unexpected exception while observing) fails that host
with a message naming the error; the other hosts are still planned, and nothing
escapes as a traceback. The provider here is a test double of a *provider* (no
system tool is faked): the hosts are ``connect: local`` and only read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import Engine
from reconciler.logs import configure
from reconciler.provider import HostContext, Provider, Resource, State
from reconciler.spec import load_spec


class Probe(Resource):
    name: str


class BuggyOnHostA(Provider[Probe]):
    kind = "probes"
    model = Probe

    def resource_id(self, resource: Probe) -> str:
        return resource.name

    def desired(self, resource: Probe, ctx: HostContext) -> State:
        return {"present": True}

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, Probe]) -> dict[
            str, State | None]:
        if ctx.name == "a":
            raise KeyError("missing")  # stands in for a bug, e.g. parsing unexpected output
        return dict.fromkeys(ids)


def test_provider_bug_fails_only_its_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Log to this test's stderr (an earlier in-process CLI run may have bound another one).
    configure(fmt="json")
    (tmp_path / "spec.yaml").write_text("hosts:\n  a: {connect: local}\n  b: {connect: local}\n"
                                        "probes:\n  - name: one\n")
    providers: dict[str, Provider[Any]] = {"probes": BuggyOnHostA()}
    spec, diags = load_spec(str(tmp_path), providers)
    assert spec is not None, [str(d) for d in diags.items]
    with Engine(spec) as engine:
        plan = engine.plan()
    hosts = {h.host: h for h in plan.hosts}
    assert hosts["a"].error == "internal error while planning: KeyError: 'missing'"
    assert hosts["a"].changes == []
    assert hosts["b"].error == ""
    assert [c.address for c in hosts["b"].changes] == ["probes:one"]
    assert plan.has_errors
    assert '"error": "internal error while planning: KeyError: \'missing\'"' in capsys.readouterr().err
