"""When one item has two mistakes, both are reported. Pydantic stops at field errors
before the model's own checks, and the provider's ``validate`` never ran on an item
pydantic refused: fixing the first mistake used to reveal the second only on the
next run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.specs import LOCAL_HOSTS, errors, validate, write_files

SPEC = """\
files:
  - path: /srv/a
    content: hello
    mode: 0644
    owner: Not A User
  - path: /srv/b
    content: x
    template: b.tpl
    owner: "bad owner"
  - path: relative/c
    colour: blue
    content: x
    template: c.tpl
"""


def test_both_mistakes_of_each_item_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS, "files.yaml": SPEC,
                                           "b.tpl": "b", "c.tpl": "c"})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == [
        # pydantic (unquoted mode) + the provider's check of the owner
        'files.yaml:4:5: files[0].mode: mode must be a quoted octal string such as "0750"; YAML read this '
        "unquoted mode as the number 420 (octal 0644), so quote it",
        "files.yaml:5:5: files[0].owner: 'Not A User' is not a valid user or group name",
        # the model's own check (content and template) + the provider's check of the owner
        "files.yaml:6:5: files[1]: set exactly one of content or template",
        "files.yaml:9:5: files[1].owner: 'bad owner' is not a valid user or group name",
        # an unknown key + the model's own check + the provider's check of the path
        "files.yaml:10:5: files[2]: set exactly one of content or template",
        "files.yaml:10:5: files[2].path: must be an absolute path, got 'relative/c'",
        "files.yaml:11:5: files[2].colour: unknown field; expected one of hosts, depends_on, path, content, "
        "template, owner, group, mode, state",
    ]
