"""Colour only on a terminal, and NO_COLOR / FORCE_COLOR / --color decide over that.

The end-to-end cases run ``reconcile plan`` through a pseudo-terminal (pexpect) and
through a pipe, against a spec whose only host refuses connections (127.0.0.1:1), so
the plan prints an error line that is red when coloured; no test host is needed.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pexpect
import pytest

from reconciler.terminal import use_color
from tests.support.harness import RECONCILE, reconcile, write_spec

ESC = "\x1b["


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert use_color("auto", Tty()) and not use_color("auto", io.StringIO())
    assert use_color("always", io.StringIO()) and not use_color("never", Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color("auto", Tty())
    assert use_color("always", io.StringIO())  # an explicit flag wins
    monkeypatch.setenv("NO_COLOR", "")  # empty means unset (no-color.org)
    assert use_color("auto", Tty())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert use_color("auto", io.StringIO())


@pytest.fixture()
def dead_spec(tmp_path: Path) -> Path:
    return write_spec(tmp_path / "spec", {"dead": {"connect": "ssh://root@127.0.0.1:1",
                                                    "host_key": "accept-new"}},
                      {"files": [{"path": "/tmp/x", "content": "x\n"}]})


def on_a_terminal(spec: Path, tmp_path: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    environ.update(env, HOME=str(tmp_path))
    child = pexpect.spawn(str(RECONCILE), ["plan", str(spec)], env=environ, encoding="utf-8", timeout=120)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    return str(child.before)


def test_coloured_on_a_terminal(dead_spec: Path, tmp_path: Path) -> None:
    out = on_a_terminal(dead_spec, tmp_path)
    assert f"{ESC}1;31mError: host dead:" in out


def test_no_color_wins_on_a_terminal(dead_spec: Path, tmp_path: Path) -> None:
    out = on_a_terminal(dead_spec, tmp_path, NO_COLOR="1")
    assert "Error: host dead:" in out and ESC not in out


def test_plain_in_a_pipe_unless_forced(dead_spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out = reconcile("plan", dead_spec, check_code=1).stdout
    assert "Error: host dead:" in out and ESC not in out
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert f"{ESC}1;31mError: host dead:" in reconcile("plan", dead_spec, check_code=1).stdout
