"""Without a Docker engine, host tests FAIL (never skip) and say how to fix it; other
tests still run, and `-m "not host"` deselects the host tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TEST_FILE = """
def test_needs_a_host(fresh_host):
    pass

def test_plain():
    pass
"""


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(TEST_FILE)
    empty_bin = tmp_path / "bin"  # a PATH without docker
    empty_bin.mkdir(exist_ok=True)
    env = dict(os.environ, PATH=str(empty_bin), PYTHONPATH=str(REPO), RECONCILER_TESTBED_NO_START="1")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path),
         "-p", "tests.conftest", "-p", "no:cacheprovider", str(tmp_path / "test_inner.py"), *args],
        capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.timeout(300)
def test_host_tests_fail_with_a_hint_when_docker_is_missing(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 passed" in out and "1 error" in out, out
    assert "skipped" not in out
    assert "bash scripts/ensure-docker.sh" in out


@pytest.mark.timeout(300)
def test_not_host_deselects_host_tests(tmp_path: Path) -> None:
    proc = run_pytest(tmp_path, "-m", "not host")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 passed, 1 deselected" in out, out
