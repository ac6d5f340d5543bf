"""One path, one spelling: ``/opt//a``, ``/opt/a/`` and ``/opt/./a`` are the same file
as ``/opt/a``, so a spec that spelled it twice used to get two resources fighting
over one file. Every non-canonical spelling is now a validation error naming the
file, line and the canonical form."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.specs import LOCAL_HOSTS, errors, validate, write_files

SPEC = """\
files:
  - {path: /opt/a, content: one}
  - {path: /opt//a, content: two}
  - {path: /opt/a/, content: three}
  - {path: /opt/./a, content: four}
directories:
  - {path: /srv/data/}
  - {path: /srv/data}
"""


def test_every_other_spelling_of_a_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_files(tmp_path / "spec", {"hosts.yaml": LOCAL_HOSTS, "paths.yaml": SPEC})
    code, lines = validate(spec, monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == [
        "paths.yaml:3:6: files[1].path: write '/opt/a', not '/opt//a': no '//', '.' segments or trailing '/'",
        "paths.yaml:4:6: files[2].path: write '/opt/a', not '/opt/a/': no '//', '.' segments or trailing '/'",
        "paths.yaml:5:6: files[3].path: write '/opt/a', not '/opt/./a': no '//', '.' segments or trailing "
        "'/'",
        "paths.yaml:7:6: directories[0].path: write '/srv/data', not '/srv/data/': no '//', '.' segments or "
        "trailing '/'",
        # directories already named '/srv/data/' by its canonical id: both mistakes are shown.
        "paths.yaml:8:5: directories[1]: directories:/srv/data is defined twice (also at paths.yaml:7:5) "
        "(hint: give each a distinct id, or limit them to different hosts)",
    ]
