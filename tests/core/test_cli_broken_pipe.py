"""A reader that goes away (``reconcile schema | head -1``) ends the command quietly:
no traceback, no "Exception ignored" message, the usual exit code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.harness import RECONCILE


@pytest.mark.parametrize("args", [["schema"], ["completion", "zsh"], ["--help"]])
def test_closed_pipe_exits_quietly(args: list[str], tmp_path: Path) -> None:
    # `head -c 1` exits after one byte, long before reconcile has written it all
    # (the schema is ~70 KB, more than a pipe buffer holds).
    command = f"'{RECONCILE}' {' '.join(args)} 2>'{tmp_path}/err'"
    script = f"{command} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "0"
    err = (tmp_path / "err").read_text()
    assert err == "", err
