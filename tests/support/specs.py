"""Writing a spec from text (or raw bytes) and validating it in-process, as a user's
`reconcile validate` would: exit code and stderr lines, no host involved."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from reconciler.cli import main

LOCAL_HOSTS = "hosts:\n  web: {connect: local}\n"
DIAGNOSTIC = re.compile(r"^(?:warning: )?(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")


def write_files(root: Path, files: Mapping[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return root


def validate(spec_dir: Path, monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """``reconcile validate .`` run in ``spec_dir``: (exit code, stderr lines)."""
    monkeypatch.chdir(spec_dir)
    code = main(["validate", "."])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err.splitlines()


def errors(lines: list[str]) -> list[str]:
    """The ``file:line:col: ...`` lines (the summary line dropped)."""
    return [line for line in lines if DIAGNOSTIC.match(line)]
