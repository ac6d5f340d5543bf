"""Start-up stays cheap: ``--version`` imports nothing of the package beyond its
version; ``validate`` and output to a pipe never import rich; the shared CLI
options come from reconciler.commands, which loads the spec module lazily.
(Times are measured in bench/, never asserted here.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "tests" / "core" / "fixtures" / "good_spec"

PROBE = """
import json, sys
sys.argv = ["reconcile", *{args!r}]
from reconciler.launch import main
try:
    code = main()
except SystemExit as exc:
    code = exc.code
watched = ("rich", "pydantic", "structlog", "paramiko", "shtab")
mods = sorted(m for m in sys.modules if m.split(".")[0] in watched or m.startswith("reconciler"))
print("\\n@@" + json.dumps({{"code": code, "modules": mods}}))
"""


def imported(*args: str) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(args=list(args))], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    data = json.loads(proc.stdout.rsplit("@@", 1)[1])
    return data["code"], set(data["modules"])


def test_version_imports_nothing_else() -> None:
    code, modules = imported("--version")
    assert code == 0
    assert modules <= {"reconciler", "reconciler.launch"}, modules


def test_validate_does_not_load_rich_or_ssh() -> None:
    code, modules = imported("validate", str(GOOD))
    assert code == 0
    assert not any(m.split(".")[0] in ("rich", "paramiko", "shtab") for m in modules), modules


def test_commands_module_is_light() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys, reconciler.commands as c; "
                           "print('reconciler.spec' in sys.modules, 'pydantic' in sys.modules)"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.stdout.split() == ["False", "False"]
    from reconciler import commands, spec

    assert commands.ENV_SPEC == spec.ENV_SPEC
