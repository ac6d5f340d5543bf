"""Mistakes in groups, selectors, group variables, fleet references and cross-host
dependencies are reported all at once, each as ``file:line:column: field: reason``
(golden: tests/fleet/fixtures/bad/expected.txt), and nothing is contacted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.cli import main

BAD = Path(__file__).parent / "fixtures" / "bad"

# What each mistake must say (pinned beside the golden, so a regenerated golden cannot
# drift silently).
MUST_SAY = [
    "spec.yaml:8:12: groups.web.vars.port: groups edge and web both set variable 'port', differently, "
    "and host web-1 is in both",
    "spec.yaml:10:20: groups.edge.hosts[1]: unknown host or group 'nosuch'",
    "spec.yaml:12:3: groups.cache: group 'cache' has the name of a host",
    "spec.yaml:16:3: groups.loop-b: groups contain each other in a cycle: loop-a -> loop-b -> loop-a",
    "spec.yaml:22:18: files[0].hosts[1]: unknown host or group 'web-9'",
    "spec.yaml:23:5: files[0].content: ${host:web/address} names 2 hosts (web-1, web-2)",
    "spec.yaml:26:5: files[1].content: ${host:db/address}: host db has no address",
    "spec.yaml:26:5: files[1].content: ${host:web-1/vars/nope}: host web-1 has no variable 'nope'",
    "spec.yaml:26:5: files[1].content: ${host:web-1/colour}: unknown fact 'colour'",
    "spec.yaml:29:18: files[2].depends_on[0]: depends on webs/files:/etc/a: unknown host or group 'webs'",
    "spec.yaml:29:39: files[2].depends_on[1]: depends on web/files:/etc/zzz, but the spec does not define",
    "spec.yaml:29:61: files[2].depends_on[2]: depends on db/files:/etc/a, but files:/etc/a applies to none",
    "spec.yaml:34:21: nginx_sites[0].upstreams.u.servers[0]: one list item repeats for one selector, and "
    "this one uses 2 (web, db)",
    "spec.yaml:37:13: nginx_sites[0].extra[0]: ${each:nosuch/name}: unknown host or group 'nosuch'",
]


def test_fleet_mistakes_are_reported_at_their_lines(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD)
    assert main(["validate", "spec.yaml"]) == 1
    err = capsys.readouterr().err
    if os.environ.get("RECONCILER_UPDATE_GOLDEN"):
        (BAD / "expected.txt").write_text(err)
    assert err == (BAD / "expected.txt").read_text()
    for line in MUST_SAY:
        assert line in err, line
    assert "Traceback" not in err


def test_each_outside_a_list_and_cross_host_cycles_are_refused(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "spec.yaml").write_text(
        'hosts:\n'
        '  a: {connect: "ssh://root@10.0.0.1"}\n'
        '  b: {connect: "ssh://root@10.0.0.2"}\n'
        'files:\n'
        '  - path: /etc/x\n'
        '    content: "${each:a/name}"\n'
        '    depends_on: ["b/files:/etc/y"]\n'
        '    hosts: [a]\n'
        '  - path: /etc/y\n'
        '    content: y\n'
        '    depends_on: ["a/files:/etc/x"]\n'
        '    hosts: [b]\n')
    assert main(["validate", str(tmp_path / "spec.yaml")]) == 1
    err = capsys.readouterr().err
    assert ":6:5: files[0].content: ${each:a/name} is not inside a list" in err, err
    assert "depends_on: hosts depend on each other in a cycle: a -> b -> a" in err, err
