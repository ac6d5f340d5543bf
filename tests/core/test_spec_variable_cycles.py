"""Variables may refer to each other (``url: https://${domain}/``); a variable that
refers to itself, directly or through others, is a validation error at its
definition. Before the fix references inside variables were never expanded: the
host got a literal ``${b}``, and a cycle passed validation silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.spec import load_spec
from tests.support.specs import errors, validate, write_files

CYCLES = """\
hosts:
  web:
    connect: local
    vars:
      a: "x-${b}"
      b: "${a}"
      self: "${self}!"
vars:
  loop1: "${loop2}"
  loop2: "${loop1}"
files:
  - {path: /srv/a, content: "${a}"}
"""


def test_cycles_are_reported_where_the_variables_are_defined(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_files(tmp_path / "spec", {"spec.yaml": CYCLES})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == [
        "spec.yaml:5:7: hosts.web.vars.a: variable 'a': variables refer to each other in a cycle: "
        "${a} -> ${b} -> ${a}",
        "spec.yaml:6:7: hosts.web.vars.b: variable 'b': variables refer to each other in a cycle: "
        "${a} -> ${b} -> ${a}",
        "spec.yaml:7:7: hosts.web.vars.self: variable 'self': variables refer to each other in a cycle: "
        "${self} -> ${self}",
        "spec.yaml:9:3: vars.loop1: variable 'loop1': variables refer to each other in a cycle: "
        "${loop1} -> ${loop2} -> ${loop1}",
        "spec.yaml:10:3: vars.loop2: variable 'loop2': variables refer to each other in a cycle: "
        "${loop1} -> ${loop2} -> ${loop1}",
    ]


def test_an_exponential_expansion_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    chain = "".join(f"  v{i}: \"${{v{i - 1}}}${{v{i - 1}}}\"\n" for i in range(1, 40))
    spec = write_files(tmp_path / "spec", {"spec.yaml": "hosts:\n  web: {connect: local}\nvars:\n"
                                                        "  v0: abcdefgh\n" + chain})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    # v22 is 8 * 2^22 characters, past 16 Mi: it is the one at fault, reported once.
    assert errors(lines) == ["spec.yaml:26:3: vars.v22: variable 'v22': expands to more than 16,777,216 "
                             "characters"]


def test_variables_refer_to_each_other_across_levels(tmp_path: Path) -> None:
    spec_dir = write_files(tmp_path / "spec", {"spec.yaml": """\
hosts:
  web:
    connect: local
    vars: {domain: example.com, url: "https://${domain}${base}"}
vars: {base: /app, home: "/srv/${host}${base}"}
files:
  - {path: "${home}/url", content: "${url} $${url}"}
"""})
    spec, diags = load_spec(str(spec_dir))
    assert spec is not None, [str(d) for d in diags.items]
    [entry] = spec.entries
    assert entry.id == "/srv/${host}/app/url"  # top-level vars are in the id; host ones per host
    resource = spec.resource_for_host(entry, "web")
    assert resource.path == "/srv/web/app/url"  # type: ignore[attr-defined]
    assert resource.content == "https://example.com/app $${url}"  # type: ignore[attr-defined]


def test_a_variable_that_refers_to_an_undefined_one_is_reported_where_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_files(tmp_path / "spec", {"spec.yaml": """\
hosts:
  web: {connect: local, vars: {url: "https://${domian}/"}}
files:
  - {path: /srv/a, content: "${url}"}
"""})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == ["spec.yaml:4:20: files[0].content: variable ${url} refers to ${domian}, which "
                             "host web does not define (hint: define it under hosts.NAME.vars or top-level "
                             "vars)"]
