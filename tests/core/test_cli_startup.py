"""Start-up stays cheap: ``--version`` imports nothing of the package beyond its
version; ``validate`` and output to a pipe never import rich; a plan imports only
the kinds its spec names, and neither deepdiff (nothing differs) nor paramiko,
docker or croniter (nothing needs them); the shared CLI options come from
reconciler.commands, which loads the spec module lazily. (Times are measured in
bench/bench_startup.py, never asserted here.)"""

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
watched = ("rich", "pydantic", "structlog", "paramiko", "shtab", "deepdiff", "docker", "croniter")
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


def test_noop_plan_imports_only_its_kinds(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "app.conf").write_text("port = 8080\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("hosts:\n  here: {connect: local}\n"
                    "files:\n"
                    f"  - {{path: {tmp_path}/etc/app.conf, content: \"port = 8080\\n\"}}\n")
    code, modules = imported("plan", str(spec))
    assert code == 0
    kinds = {m.split(".")[1] for m in modules if m.startswith("reconciler_providers.")}
    assert kinds <= {"files", "common"}, kinds
    assert not any(m.split(".")[0] in ("rich", "paramiko", "docker", "deepdiff", "croniter", "shtab")
                   for m in modules), modules


def test_commands_module_is_light() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys, reconciler.commands as c; "
                           "print('reconciler.spec' in sys.modules, 'pydantic' in sys.modules)"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.stdout.split() == ["False", "False"]
    from reconciler import commands, spec

    assert commands.ENV_SPEC == spec.ENV_SPEC
