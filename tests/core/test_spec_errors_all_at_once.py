"""Several mistakes in one spec are all reported in one run, in file order.

The fixture ``bad_specs/many_mistakes`` mixes a type error (unquoted mode), an
unknown key, a provider check (relative path), an unresolved variable, an unknown
host, a missing dependency and a cycle. A mistake in one resource must not hide
the others; only references *to* a resource that failed validation are held back
(reporting them would be a false alarm).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.spec import load_spec

CASE = Path(__file__).parent / "fixtures" / "bad_specs" / "many_mistakes"


def test_every_mistake_is_reported_in_one_run(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(CASE)
    assert main(["plan", "."]) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines == (CASE / "expected.txt").read_text().splitlines()
    reported = {line.split(": ", 2)[1] for line in lines[:-1]}
    assert reported == {
        "directories[0].mode",     # unquoted 0750
        "files[0].colour",         # unknown key
        "files[1].path",           # relative path (provider validation)
        "files[1].content",        # ${port} undefined on web
        "files[1].hosts[1]",       # unknown host cache
        "files[1].depends_on[0]",  # depends on nothing
        "files[3].depends_on",     # c -> d -> c
    }
    assert lines[-1] == "7 errors in the spec; nothing was changed."
    assert "Traceback" not in err


def test_diagnostics_are_values_not_exceptions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASE)
    spec, diags = load_spec(".")
    assert spec is None
    assert len(diags.errors) == 7
    assert all(d.pos is not None and d.pos.file == "spec.yaml" for d in diags.errors)
    assert [d.pos.line for d in diags.sorted() if d.pos] == [9, 14, 15, 16, 17, 18, 24]
