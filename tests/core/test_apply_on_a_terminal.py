"""``reconcile apply`` on a terminal (driven through a pseudo-terminal with pexpect):
it shows the plan with its diff, asks, applies only on ``yes`` (anything else
changes nothing), draws its progress, prints one result list, and ``--yes`` skips
the question. Off a terminal it never asks (every other host test runs that way)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pexpect
import pytest

from testbed.hosts import TestHost
from tests.support.harness import RECONCILE, cat, reconcile, write_spec

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROMPT = "Enter a value: "


def resources(version: str) -> dict[str, object]:
    content = f"listen 8080\nworkers {version}\nlog info\n"
    return {"files": [{"path": "/srv/tty/app.conf", "content": content}]}


def spawn(spec: Path, home: Path, *extra: str) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["HOME"] = str(home)
    return pexpect.spawn(str(RECONCILE), ["apply", str(spec), *extra], env=env, encoding="utf-8",
                         timeout=180, dimensions=(40, 140))


def finish(child: pexpect.spawn) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus), ANSI.sub("", str(child.before)).replace("\r", "")


@pytest.mark.timeout(600)
def test_the_terminal_asks_and_only_yes_applies(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, resources("4"))
    reconcile("apply", spec, check_code=0)  # off a terminal: no question
    write_spec(spec, {"web": host}, resources("8"))

    child = spawn(spec, tmp_path)
    child.expect_exact(PROMPT)
    shown = ANSI.sub("", str(child.before)).replace("\r", "")
    assert "  ~ files:/srv/tty/app.conf" in shown
    assert "          -workers 4\n          +workers 8\n" in shown
    assert "Do you want to apply these changes to web?" in shown
    child.sendline("no")
    code, rest = finish(child)
    assert code == 1 and "Apply cancelled; nothing was changed." in rest
    assert cat(host, "/srv/tty/app.conf") == "listen 8080\nworkers 4\nlog info\n"

    child = spawn(spec, tmp_path)
    child.expect_exact(PROMPT)
    child.sendline("yes")
    code, rest = finish(child)
    assert code == 0, rest
    assert "  ✓ web: files:/srv/tty/app.conf (update)" in rest
    assert "Apply complete! 1 applied, 0 failed, 0 skipped." in rest
    assert "1/1" in rest and "done" in rest  # the progress row
    assert "change " not in rest  # no log line repeating the change
    assert cat(host, "/srv/tty/app.conf") == "listen 8080\nworkers 8\nlog info\n"

    write_spec(spec, {"web": host}, resources("16"))
    code, out = finish(spawn(spec, tmp_path, "--yes"))
    assert code == 0, out
    assert PROMPT not in out and "Apply complete!" in out
    assert cat(host, "/srv/tty/app.conf") == "listen 8080\nworkers 16\nlog info\n"
