"""Benchmark: the time ``reconcile`` spends on this machine before and around SSH.

    .venv/bin/python bench/bench_startup.py [--repeat 10] [--reconcile PATH] [--wheel] [--ssh] [--imports 15]

Runs each command as a user does (a new process each time, bytecode compiled as an
install leaves it) and prints, per command, the CPU time (user + system of the
process and the children it waited for: min and median of ``--repeat`` runs), the
wall time (min and median) and the peak RSS (measured with GNU time):

* ``python -c pass`` and ``python -c "import pydantic.main"``: the interpreter and
  the one import every spec command needs, as a yardstick for a loaded machine
  (figures are also shown as multiples of the pydantic import);
* ``reconcile --version``;
* ``reconcile validate specs/servqr`` (the flagship spec, every kind);
* ``reconcile plan SMALL --detailed-exitcode``, a no-op plan of a small spec
  (``connect: local``; one directory and three files under a temporary directory,
  made beforehand exactly as the spec wants them, so nothing is planned and no
  inventory is written);
* with ``--ssh``, the same no-op plan of three files over SSH to a throwaway test
  host (started with the test bed, label ``io.reconciler.testbed=1``, removed at
  exit): the local share of an SSH run (paramiko and its cryptography included).

``--reconcile PATH`` measures another installation's ``reconcile`` (its python is
the one beside it). ``--wheel`` builds this checkout's wheel and installs it,
without dependencies, into a throwaway venv that borrows this venv's packages: an
installed (non-editable) start-up, without the editable install's import finder.
``--imports N`` adds the N modules with the largest own import time in ``validate``
(``python -X importtime``, min over the runs).

Targets (issue 14): validate servqr <= 0.15 s, --version <= 0.1 s, peak RSS of a
no-op plan <= 50 MiB. Each is printed against its figure; the exit code is 0 either
way (a loaded machine is not a regression). CPU time is the steadier figure on a
shared machine; compare wall times only when the load is low (it is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from testbed.hosts import TestHost
SERVQR = ROOT / "specs" / "servqr"
TARGETS = {"version": 0.1, "validate": 0.15}
TARGET_RSS_MIB = 50.0


@dataclass
class Figures:
    label: str
    cpu: list[float]
    wall: list[float]
    rss_mib: float | None

    def line(self, yardstick: float | None, target: float | None = None) -> str:
        cpu_min, wall_min = min(self.cpu), min(self.wall)
        text = (f"  {self.label:<37} CPU min {cpu_min:6.3f} s  med {statistics.median(self.cpu):6.3f} s | "
                f"wall min {wall_min:6.3f} s  med {statistics.median(self.wall):6.3f} s | "
                f"RSS {f'{self.rss_mib:5.1f} MiB' if self.rss_mib is not None else 'n/a'}")
        if yardstick:
            text += f" | {cpu_min / yardstick:4.1f}x pydantic"
        if target is not None:
            text += f" | target <= {target} s: {'ok' if cpu_min <= target else 'MISSED'} (CPU min)"
        return text


def child_env() -> dict[str, str]:
    # As installed: pip compiles bytecode at install time, so a real start-up never
    # compiles sources. A session that sets PYTHONDONTWRITEBYTECODE would recompile the
    # whole package on every run; the warm-up run writes the cache instead.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "RECONCILER_SPEC")}
    env["NO_COLOR"] = "1"
    return env


GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_once(argv: Sequence[str], cwd: Path, expect: int = 0) -> tuple[float, float, float | None]:
    """(CPU seconds, wall seconds, peak RSS MiB or None) of one process.

    The peak RSS comes from GNU time (``/usr/bin/time -f %M``), which forks the command
    from a small process: a process forked from this one would report at least this
    one's RSS (Linux records the pre-exec peak too). Without GNU time it is not shown."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss.name, *argv] if GNU_TIME else list(argv)
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)  # the command's CPU time (time's is negligible)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != expect:
            out.seek(0)
            raise SystemExit(f"`{' '.join(argv)}` exited {code} (expected {expect}):\n"
                             f"{out.read().decode(errors='replace')}")
        peak = int(rss.read().split()[-1]) / 1024 if GNU_TIME else None
    return usage.ru_utime + usage.ru_stime, wall, peak


def measure(label: str, argv: Sequence[str], repeat: int, cwd: Path) -> Figures:
    run_once(argv, cwd)  # warm-up: writes the bytecode cache, fills the page cache
    runs = [run_once(argv, cwd) for _ in range(repeat)]
    peaks = [r for _, _, r in runs if r is not None]
    return Figures(label, [c for c, _, _ in runs], [w for _, w, _ in runs], max(peaks) if peaks else None)


def write_small_spec(base: Path) -> Path:
    """A directory and three files, made as the spec says, and the spec (connect: local)."""
    owner = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    data = base / "data"
    data.mkdir()
    data.chmod(0o755)
    lines = [f"hosts:\n  here:\n    connect: local\ndirectories:\n  - path: {data}\n",
             f"    owner: {owner}\n    group: {group}\n    mode: \"0755\"\nfiles:\n"]
    for i in range(3):
        path = data / f"app{i}.conf"
        path.write_text(f"setting_{i} = {i}\n")
        path.chmod(0o644)
        lines.append(f"  - path: {path}\n    content: \"setting_{i} = {i}\\n\"\n"
                     f"    owner: {owner}\n    group: {group}\n    mode: \"0644\"\n")
    spec = base / "spec"
    spec.mkdir()
    (spec / "small.yaml").write_text("".join(lines))
    return spec


def write_ssh_spec(base: Path, host: TestHost) -> Path:
    """Three files on the test host, made as the spec says, and the spec."""
    host.exec("mkdir -p /srv/startup && for i in 0 1 2; do printf 'setting_%d = %d\\n' $i $i "
              "> /srv/startup/app$i.conf; done && chmod 0644 /srv/startup/*")
    spec = base / "ssh-spec"
    spec.mkdir()
    entry = {"connect": host.ssh_url, "identity_file": str(host.key_path),
             "known_hosts": str(host.known_hosts_path)}
    files = [{"path": f"/srv/startup/app{i}.conf", "content": f"setting_{i} = {i}\n", "mode": "0644"}
             for i in range(3)]
    (spec / "hosts.yaml").write_text(json.dumps({"hosts": {"bench": entry}}))
    (spec / "files.yaml").write_text(json.dumps({"files": files}))
    return spec


def install_wheel(tmp: Path) -> Path:
    """This checkout's wheel in a fresh venv whose dependencies are this venv's; returns
    its ``reconcile``."""
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".mypy_cache", ".ruff_cache",
        ".pytest_cache", ".testbed"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp / "wheels"), str(src)], check=True, timeout=600)
    [wheel] = sorted((tmp / "wheels").glob("reconciler-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(python), "-c", where], check=True, capture_output=True,
                               text=True).stdout.strip())
    # Dependencies from this venv, after the venv's own site-packages (so the installed
    # reconciler wins over this venv's editable one).
    (site / "zz-borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=600)
    return venv / "bin" / "reconcile"


def top_imports(python: Path, argv: Sequence[str], n: int, runs: int, cwd: Path) -> list[tuple[str, float]]:
    """The ``n`` modules with the largest own import time (min over ``runs``), in ms."""
    mins: dict[str, float] = {}
    for i in range(runs):
        proc = subprocess.run([str(python), "-X", "importtime", "-m", "reconciler", *argv], cwd=cwd,
                              env=child_env(), capture_output=True, text=True, check=True, timeout=300)
        seen: dict[str, float] = {}
        for line in proc.stderr.splitlines():
            if line.startswith("import time:") and "self [us]" not in line:
                own, _, name = line.split("|")
                seen[name.strip()] = seen.get(name.strip(), 0.0) + int(own.split(":")[1]) / 1000
        mins = seen if i == 0 else {k: min(v, seen.get(k, 0.0)) for k, v in mins.items()}
    return sorted(mins.items(), key=lambda kv: -kv[1])[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--reconcile", type=Path, default=Path(sys.executable).with_name("reconcile"),
                        help="the reconcile executable to measure (default: this venv's)")
    parser.add_argument("--wheel", action="store_true",
                        help="measure this checkout installed from its wheel (not editable) instead")
    parser.add_argument("--ssh", action="store_true", help="also a no-op plan over SSH to a test host")
    parser.add_argument("--imports", type=int, default=0, metavar="N",
                        help="also list the N slowest imports of validate")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="reconciler-bench-startup-") as tmp_name, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        ssh_host: TestHost | None = None
        if args.ssh:
            from testbed.hosts import install_signal_handlers, start_host

            install_signal_handlers()
            ssh_host = stack.enter_context(start_host("startup"))
        reconcile = install_wheel(tmp) if args.wheel else args.reconcile.absolute()
        python = reconcile.with_name("python")
        small = write_small_spec(tmp)
        # Outside the checkout: `python -c` and `-m` would import the checkout's sources
        # from the current directory instead of the installed package.
        cwd = tmp

        print(f"reconcile: {reconcile}{' (wheel install)' if args.wheel else ''}")
        print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
              f"on {os.cpu_count()} CPUs; {args.repeat} runs each")
        floor = measure("python -c pass", [str(python), "-c", "pass"], args.repeat, cwd)
        pyd = measure("python -c 'import pydantic.main'", [str(python), "-c", "import pydantic.main"],
                      args.repeat, cwd)
        version = measure("reconcile --version", [str(reconcile), "--version"], args.repeat, cwd)
        validate = measure("reconcile validate specs/servqr", [str(reconcile), "validate", str(SERVQR)],
                           args.repeat, cwd)
        plan = measure("reconcile plan SMALL (no-op, local)",
                       [str(reconcile), "plan", str(small), "--detailed-exitcode"], args.repeat, cwd)
        ssh_plan = None
        if ssh_host is not None:
            ssh_spec = write_ssh_spec(tmp, ssh_host)
            ssh_plan = measure("reconcile plan SSH (no-op, 3 files)",
                               [str(reconcile), "plan", str(ssh_spec), "--detailed-exitcode"],
                               args.repeat, cwd)
        yardstick = min(pyd.cpu)
        print(floor.line(yardstick))
        print(pyd.line(yardstick))
        print(version.line(yardstick, TARGETS["version"]))
        print(validate.line(yardstick, TARGETS["validate"]))
        print(plan.line(yardstick))
        if ssh_plan is not None:
            print(ssh_plan.line(yardstick))
        for figures in (plan, ssh_plan):
            if figures is not None and figures.rss_mib is not None:
                ok_rss = figures.rss_mib <= TARGET_RSS_MIB
                print(f"  peak RSS of {figures.label.removeprefix('reconcile ')}: {figures.rss_mib:.1f} MiB "
                      f"(target <= {TARGET_RSS_MIB:.0f} MiB: {'ok' if ok_rss else 'MISSED'})")
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if args.imports:
            runs = min(args.repeat, 5)
            print(f"slowest own import times of validate specs/servqr (ms, min of {runs} runs):")
            for name, ms in top_imports(python, ["validate", str(SERVQR)], args.imports, runs, cwd):
                print(f"  {ms:7.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
