"""Values PyYAML parses but cannot construct are diagnostics at their position, not
tracebacks: an impossible date, an integer past Python's 4,300-digit limit, bad
base64, an explicit tag on text that does not fit it, a control character."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.specs import LOCAL_HOSTS, errors, validate, write_files

CASES = {
    "impossible_date": ("content: 2021-02-30", "x.yaml:4:14: YAML error: cannot read this timestamp: "
                                               "day is out of range for month"),
    "huge_integer": ("content: " + "9" * 5000, "x.yaml:4:14: YAML error: cannot read this int: Exceeds the "
                                               "limit (4300 digits) for integer string conversion: value has "
                                               "5000 digits"),
    "bad_base64": ("content: !!binary zz=", "x.yaml:4:14: YAML error: cannot read this binary: failed to "
                                           "decode base64 data: Incorrect padding"),
    "tagged_int": ("content: !!int twelve", "x.yaml:4:14: YAML error: cannot read this int: invalid literal "
                                           "for int() with base 10: 'twelve'"),
    "control_char": ("content: a\x07b", "x.yaml:4:15: YAML error: unacceptable character #x0007: special "
                                       "characters are not allowed"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_odd_value_is_reported_once_at_its_position(case: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    line, expected = CASES[case]
    text = f"files:\n  - path: /srv/a\n    mode: '0644'\n    {line}\n"
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS, "x.yaml": text})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    # Only the YAML error: no second "expected a string, got null" for the same value.
    assert errors(lines) == [expected]
