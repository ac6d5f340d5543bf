"""A bad spec gives compiler-style errors (``file:line:column: field.path: reason``),
exit code 1 and no traceback, and nothing is contacted.

Each case is a spec directory under ``tests/core/fixtures/bad_specs/`` with the
exact stderr expected from ``reconcile plan`` in ``expected.txt`` (golden). The
hosts are ``connect: local`` and the paths are never created: a bad spec must
stop before any host is touched.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main

BAD_SPECS = Path(__file__).parent / "fixtures" / "bad_specs"
DIAGNOSTIC = re.compile(r"^(?P<file>[\w./-]+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")

# The case, and the one diagnostic it must produce (beyond the golden file, this
# pins what each case is about, so a regenerated golden cannot drift silently).
CASES = {
    "yaml_syntax": "spec.yaml:3:6: YAML syntax error: expected ',' or '}', but got ':'",
    "unknown_key": "spec.yaml:6:5: files[0].colour: unknown field; expected one of hosts, depends_on, path, "
                   "content, template, owner, group, mode, state",
    "wrong_type": "spec.yaml:5:5: files[0].content: expected a string, got integer 5",
    "bad_mode": "spec.yaml:5:5: directories[0].mode: mode must be an octal string such as \"0644\" or "
                "\"2750\", got 'rwxr-x---'",
    "unquoted_mode": "spec.yaml:5:5: directories[0].mode: mode must be a quoted octal string such as "
                     "\"0750\"; YAML read this unquoted mode as the number 488 (octal 0750), so quote it",
    "duplicate_id": "more.yaml:4:5: files[1]: files:/srv/app/a.conf is defined twice (also at "
                    "hosts.yaml:4:5) (hint: give each a distinct id, or limit them to different hosts)",
    "unresolved_var": "spec.yaml:7:5: files[0].content: unresolved variable ${domain} on host(s) web "
                      "(hint: define it under hosts.NAME.vars or top-level vars)",
    "unresolved_secret": "spec.yaml:8:5: files[0].content: unresolved secret ${secret:db_pasword}: no secret "
                         "named 'db_pasword' applies to host web",
    "unknown_host": "spec.yaml:6:18: files[0].hosts[1]: unknown host 'db'; hosts are web",
    "bad_depends_on": "spec.yaml:8:18: files[0].depends_on[0]: depends on 'directories:/srv/ap', which the "
                      "spec does not define (write it as kind:id, e.g. files:/srv/app/a.conf)",
    "dependency_cycle": "spec.yaml:9:5: files[1].depends_on: dependency cycle: files:/srv/app/a.conf -> "
                        "files:/srv/app/b.conf -> files:/srv/app/a.conf",
}


def run_in_process(case: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                   *argv: str) -> tuple[int, str, str]:
    monkeypatch.chdir(case)
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spec_is_reported_with_position(case: str, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_in_process(BAD_SPECS / case, monkeypatch, capsys, "plan", ".")
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines == (BAD_SPECS / case / "expected.txt").read_text().splitlines()
    assert CASES[case] in lines
    assert lines[-1] == "1 error in the spec; nothing was changed."
    for line in lines[:-1]:
        assert DIAGNOSTIC.match(line), f"not file:line:col: ... -> {line!r}"
    assert "Traceback" not in err


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_reports_the_same(case: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_in_process(BAD_SPECS / case, monkeypatch, capsys, "validate", ".")
    assert code == 1
    assert err.splitlines() == (BAD_SPECS / case / "expected.txt").read_text().splitlines()


def test_validate_json_gives_positions(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_in_process(BAD_SPECS / "unknown_host", monkeypatch, capsys, "validate", "--output",
                                  "json", ".")
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    assert report["diagnostics"] == [{
        "severity": "error", "message": "unknown host 'db'; hosts are web", "field_path": "files[0].hosts[1]",
        "file": "spec.yaml", "line": 6, "column": 18, "hint": "", "resource": "",
    }]


@pytest.mark.timeout(60)
def test_cli_process_exits_1_without_traceback() -> None:
    """The real entry point, as a user runs it: stderr carries the diagnostics only."""
    exe = Path(sys.executable).with_name("reconcile")
    for case in ("yaml_syntax", "dependency_cycle"):
        proc = subprocess.run([str(exe), "plan", "."], cwd=BAD_SPECS / case, capture_output=True, text=True,
                              timeout=50, check=False)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == ""
        assert proc.stderr.splitlines() == (BAD_SPECS / case / "expected.txt").read_text().splitlines()
