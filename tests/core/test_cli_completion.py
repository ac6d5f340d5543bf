"""``reconcile completion bash|zsh|fish`` prints scripts the shells accept and that
complete the real subcommands (plugins' too) and options."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.harness import reconcile


def script(shell: str, tmp_path: Path) -> Path:
    path = tmp_path / f"reconcile.{shell}"
    path.write_text(reconcile("completion", shell, check_code=0).stdout)
    return path


def complete_bash(path: Path, words: list[str]) -> list[str]:
    """What bash offers for the last word, by calling the registered completion function."""
    line = " ".join(words)
    program = f"""
source '{path}'
func=$(complete -p reconcile | sed -E 's/.*-F ([^ ]+).*/\\1/')
COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}
"$func" reconcile '{words[-1]}' '{words[-2]}'
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    proc = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_bash_accepts_and_completes(tmp_path: Path) -> None:
    path = script("bash", tmp_path)
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    commands = set(complete_bash(path, ["reconcile", ""]))
    assert {"plan", "apply", "validate", "watch", "backup", "completion"} <= commands
    assert complete_bash(path, ["reconcile", "pl"]) == ["plan"]
    assert "--detailed-exitcode" in complete_bash(path, ["reconcile", "plan", "--d"])
    assert "--auto-approve" in complete_bash(path, ["reconcile", "apply", "--a"])


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts(shell: str, tmp_path: Path) -> None:
    path = script(shell, tmp_path)
    text = path.read_text()
    option = "-l detailed-exitcode" if shell == "fish" else "--detailed-exitcode"
    for word in ("plan", "apply", "validate", "watch", option):
        assert word in text, word
    binary = shutil.which(shell)
    if binary is None:
        pytest.skip(f"{shell} is not installed; the script was generated and checked as text")
    check = subprocess.run([binary, "-n", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    if shell == "fish":  # fish can be asked what it would complete
        offered = subprocess.run([binary, "-c", f"source '{path}'; complete -C 'reconcile pl'; "
                                  "complete -C 'reconcile apply --au'"], capture_output=True, text=True,
                                 timeout=60).stdout
        assert offered.startswith("plan\t") and "\n--auto-approve\t" in offered, offered
