"""Install this repository's package into a test host, fully offline.

* The dependency wheelhouse is downloaded once on the machine (where PyPI and its
  certificates work) into ``<cache>/wheelhouse/<key>``, keyed by a hash of
  pyproject.toml and the target (CPython 3.11, manylinux, this CPU), so it is
  reused by every session until the dependencies change.
* The project wheel is built from the repo (cached by a hash of its sources).
* Both are copied into the host and installed with ``pip --no-index`` into
  /opt/reconciler/venv; /usr/local/bin/reconcile points at its console script.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from testbed.util import REPO_ROOT, TestbedError, cache_dir, file_lock, log, run

if TYPE_CHECKING:
    from testbed.hosts import TestHost

VENV = "/opt/reconciler/venv"
#: Python on the test hosts (Debian 12's python3).
TARGET_PYTHON = "3.11"
SOURCE_DIRS = ("reconciler", "providers")
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py", "MANIFEST.in")


def _target_platforms() -> list[str]:
    arch = platform.machine()
    # Debian 12 has glibc 2.36: accept manylinux wheels built for it or anything older.
    plats = [f"manylinux_2_{minor}_{arch}" for minor in range(36, 4, -1)]
    plats += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return plats


def _pip_target_args() -> list[str]:
    args = ["--only-binary=:all:", "--python-version", TARGET_PYTHON, "--implementation", "cp"]
    abi = "cp" + TARGET_PYTHON.replace(".", "")
    for a in (abi, "abi3", "none"):
        args += ["--abi", a]
    for plat in _target_platforms():
        args += ["--platform", plat]
    return args


def project_dependencies(repo: Path = REPO_ROOT) -> list[str]:
    data = tomllib.loads((repo / "pyproject.toml").read_text())
    deps = data.get("project", {}).get("dependencies", [])
    return [str(d) for d in deps]


def wheelhouse_key(repo: Path = REPO_ROOT) -> str:
    h = hashlib.sha256()
    h.update((repo / "pyproject.toml").read_bytes())
    h.update(" ".join(_pip_target_args()).encode())
    return h.hexdigest()[:16]


def ensure_wheelhouse(repo: Path = REPO_ROOT) -> Path:
    """Download the project's runtime dependencies as wheels for the test hosts (cached)."""
    dest = cache_dir() / "wheelhouse" / wheelhouse_key(repo)
    if (dest / ".complete").exists():
        return dest
    with file_lock(f"wheelhouse-{dest.name}", what="wheelhouse download"):
        if (dest / ".complete").exists():
            return dest
        deps = project_dependencies(repo)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{dest.name}-", dir=dest.parent))
        started = time.monotonic()
        log(f"downloading {len(deps)} dependencies (+ their dependencies) into {dest}")
        try:
            if deps:
                run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "download",
                        "--quiet",
                        "--dest",
                        str(tmp),
                        *_pip_target_args(),
                        *deps,
                    ],
                    timeout=900,
                )
            (tmp / ".complete").write_text("ok\n")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log(f"wheelhouse ready in {time.monotonic() - started:.0f}s")
    return dest


def _source_hash(repo: Path) -> str:
    h = hashlib.sha256()
    paths: list[Path] = []
    for d in SOURCE_DIRS:
        if (repo / d).is_dir():
            paths += [p for p in (repo / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    paths += [repo / f for f in SOURCE_FILES if (repo / f).is_file()]
    for path in sorted(paths):
        h.update(path.relative_to(repo).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_project_wheel(repo: Path = REPO_ROOT) -> Path:
    """Build the reconciler wheel from ``repo`` (cached by a hash of its sources)."""
    out_dir = cache_dir() / "project-wheels" / _source_hash(repo)
    wheels = sorted(out_dir.glob("*.whl"))
    if wheels:
        return wheels[-1]
    with file_lock(f"project-wheel-{out_dir.name}", what="project wheel build"):
        wheels = sorted(out_dir.glob("*.whl"))
        if wheels:
            return wheels[-1]
        tmp = Path(tempfile.mkdtemp(prefix="wheel-", dir=cache_dir()))
        try:
            # Build from a copy: keeps build/ and *.egg-info out of the (shared) work tree.
            src = tmp / "src"
            shutil.copytree(
                repo,
                src,
                ignore=shutil.ignore_patterns(
                    ".git",
                    ".venv",
                    "__pycache__",
                    "*.egg-info",
                    "build",
                    "dist",
                    ".mypy_cache",
                    ".ruff_cache",
                    ".pytest_cache",
                    ".testbed",
                ),
            )
            run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--quiet",
                    "--no-deps",
                    "--wheel-dir",
                    str(tmp / "out"),
                    str(src),
                ],
                timeout=600,
            )
            built = sorted((tmp / "out").glob("*.whl"))
            if not built:
                raise TestbedError(f"pip wheel produced no wheel for {repo}")
            out_dir.mkdir(parents=True, exist_ok=True)
            for wheel in built:
                shutil.copy2(wheel, out_dir / (wheel.name + ".tmp"))
                os.replace(out_dir / (wheel.name + ".tmp"), out_dir / wheel.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return sorted(out_dir.glob("*.whl"))[-1]


def install_reconciler(host: TestHost, *, repo: Path = REPO_ROOT) -> None:
    """Install the package (+ dependencies) into /opt/reconciler/venv on ``host``, offline,
    and symlink /usr/local/bin/reconcile."""
    started = time.monotonic()
    wheelhouse = ensure_wheelhouse(repo)
    wheel = build_project_wheel(repo)
    remote = f"/tmp/reconciler-wheels-{os.getpid()}"
    host.exec(["mkdir", "-p", remote])
    try:
        run(["docker", "cp", f"{wheelhouse}/.", f"{host.container_id}:{remote}/"], timeout=300)
        run(["docker", "cp", str(wheel), f"{host.container_id}:{remote}/{wheel.name}"], timeout=300)
        host.exec(
            f"set -e; test -x {VENV}/bin/python || python3 -m venv {VENV}; "
            f"{VENV}/bin/pip install --quiet --disable-pip-version-check --no-index --find-links {remote} "
            f"--force-reinstall --no-deps {remote}/{wheel.name}; "
            f"{VENV}/bin/pip install --quiet --disable-pip-version-check --no-index --find-links {remote} "
            f"{remote}/{wheel.name}; "
            f"ln -sf {VENV}/bin/reconcile /usr/local/bin/reconcile",
            timeout=600,
        )
    finally:
        host.exec(["rm", "-rf", remote], check=False)
    log(f"installed {wheel.name} on {host.name} in {time.monotonic() - started:.0f}s")
