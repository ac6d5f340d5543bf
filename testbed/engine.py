"""Is the machine's Docker engine usable? Start it (scripts/ensure-docker.sh) if not."""

from __future__ import annotations

import os
import shutil
import subprocess

from testbed.util import REPO_ROOT, TestbedError

ENSURE_SCRIPT = REPO_ROOT / "scripts" / "ensure-docker.sh"
HINT = "run `bash scripts/ensure-docker.sh` (as root) to install and start the Docker engine"


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def ensure_docker(*, start: bool = True) -> None:
    """Return when ``docker info`` works; otherwise try ensure-docker.sh (root only, not when
    RECONCILER_TESTBED_NO_START is set), else raise."""
    if docker_available():
        return
    detail = ""
    if os.environ.get("RECONCILER_TESTBED_NO_START"):
        start = False
    if start and os.geteuid() == 0 and ENSURE_SCRIPT.exists():
        proc = subprocess.run(
            ["bash", str(ENSURE_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
        )
        if proc.returncode == 0 and docker_available():
            return
        detail = f"\n{ENSURE_SCRIPT} exited {proc.returncode}:\n{proc.stderr.strip()[-3000:]}"
    raise TestbedError(f"the Docker engine is not available; {HINT}.{detail}")
