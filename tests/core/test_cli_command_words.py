"""The command word: ``reconcile [PATH]`` still means apply, a mistyped command is
named as one (with the closest command), options' values are not mistaken for
commands, and ``python -m reconciler`` is the same program."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from reconciler.cli import build_parser, normalise_argv

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "tests" / "core" / "fixtures" / "good_spec"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_a_mistyped_command_gets_a_suggestion(tmp_path: Path) -> None:
    proc = run("plna", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "reconcile: error: unknown command 'plna'; did you mean 'plan'?"
    assert "spec path" not in proc.stderr and "Traceback" not in proc.stderr
    assert "did you mean 'validate'?" in run("valdiate", cwd=tmp_path).stderr


def test_an_unknown_word_lists_the_commands(tmp_path: Path) -> None:
    proc = run("frobnicate", cwd=tmp_path)
    assert proc.returncode == 1
    assert "unknown command 'frobnicate' (and no such spec path); commands: apply, backup" in proc.stderr


def test_a_missing_path_is_still_a_path(tmp_path: Path) -> None:
    proc = run("./no-such-spec.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    assert "spec path 'no-such-spec.yaml' does not exist" in proc.stderr


def test_an_existing_path_means_apply_and_options_values_are_skipped() -> None:
    parser = build_parser()
    assert normalise_argv([str(GOOD)], parser) == ["apply", str(GOOD)]
    assert normalise_argv(["--host", "web", str(GOOD)], parser) == ["apply", "--host", "web", str(GOOD)]
    assert normalise_argv(["--dry-run"], parser) == ["apply", "--dry-run"]
    assert normalise_argv(["plan", str(GOOD)], parser) == ["plan", str(GOOD)]
    assert normalise_argv(["-v", "plan"], parser) == ["-v", "plan"]


def test_python_dash_m_reconciler_is_the_cli() -> None:
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("reconcile ")
    proc = run("validate", str(GOOD))
    assert proc.returncode == 0, proc.stderr
    assert "is valid" in proc.stdout
