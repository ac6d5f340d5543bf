"""Benchmark: a no-op plan of a spec with 1,000 files, locally and over SSH.

    .venv/bin/python bench/bench_noop_plan.py [--files 1000] [--repeat 5] [--mode local|ssh|both]

For each mode the files are first made on the host exactly as the spec wants them
(written directly, not by the reconciler, so the plan is a no-op and nothing is
recorded in any inventory), then the plan is timed two ways:

* ``in-process``: load the spec, observe, plan and render the text, in this process
  (best and median of ``--repeat`` runs), with the remote commands the engine ran per
  host and this process's peak RSS;
* ``cli``: ``reconcile plan SPEC --detailed-exitcode`` as a subprocess, the wall time a
  user sees (interpreter start and imports included), best of ``--repeat``, with the
  peak RSS of the child.

Local mode writes under a temporary directory and uses ``connect: local``. SSH mode
starts a throwaway test host with the test bed (label ``io.reconciler.testbed=1``,
removed at exit) and writes the files under /srv/bench on it.

Targets: over SSH under 1.5 s, locally under 0.5 s, at most 5 remote commands per
host. The script prints each figure against its target and exits 1 if one is missed.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.engine import Engine  # noqa: E402
from reconciler.logs import configure  # noqa: E402
from reconciler.render import render_plan  # noqa: E402
from reconciler.spec import load_spec  # noqa: E402

RECONCILE = Path(sys.executable).with_name("reconcile")
TARGET_SECONDS = {"local": 0.5, "ssh": 1.5}
TARGET_COMMANDS = 5


@dataclass
class Result:
    mode: str
    files: int
    in_process_best: float
    in_process_median: float
    commands: int
    rss_mib: float
    cli_best: float
    cli_cpu: float
    cli_rss_mib: float
    in_process_cpu: float


def content(i: int) -> str:
    return f"file {i}: some configuration line\n"


def write_spec(spec_dir: Path, host: dict[str, str], base: str, n: int) -> None:
    owner = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    files = [{"path": f"{base}/f{i:04d}.conf", "content": content(i), "owner": owner, "group": group,
              "mode": "0644"} for i in range(n)]
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "hosts.yaml").write_text(yaml.safe_dump({"hosts": {"bench": host}}))
    (spec_dir / "files.yaml").write_text(yaml.safe_dump({"files": files}, sort_keys=False))


def in_process_plan(spec_dir: Path) -> tuple[float, int, float]:
    """(wall seconds, remote commands, CPU seconds of this process) of one plan."""
    cpu_started = time.process_time()
    started = time.perf_counter()
    spec, diags = load_spec(str(spec_dir))
    assert spec is not None, [str(d) for d in diags.items]
    with Engine(spec) as engine:
        plan = engine.plan()
        render_plan(plan)
        commands = engine.commands_run()["bench"]
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    if plan.has_errors or plan.has_changes:
        raise SystemExit(f"not a no-op plan: errors={[h.error for h in plan.hosts]}, "
                         f"changes={len(plan.changes)}")
    return elapsed, commands, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli_plan(spec_dir: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one ``reconcile plan`` process. CPU time is the
    steadier figure on a machine that other work keeps busy."""
    # As installed: pip compiles bytecode at install time, so a real start-up never
    # compiles sources. This session's environment sets PYTHONDONTWRITEBYTECODE, which
    # would make every run recompile the whole package; the first (warm-up) run of a
    # measurement writes the cache.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run([str(RECONCILE), "plan", str(spec_dir), "--detailed-exitcode"], capture_output=True,
                          text=True, check=False, env=env)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"reconcile plan exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, _children_cpu() - cpu_before


def measure(mode: str, spec_dir: Path, n: int, repeat: int) -> Result:
    in_process_plan(spec_dir)  # warm up: imports, provider loading, the SSH connection's first use
    times: list[float] = []
    cpus: list[float] = []
    commands = 0
    for _ in range(repeat):
        elapsed, commands, cpu = in_process_plan(spec_dir)
        times.append(elapsed)
        cpus.append(cpu)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cli_plan(spec_dir)  # warm-up: writes the bytecode cache, as an install would
    cli_runs = [cli_plan(spec_dir) for _ in range(repeat)]
    cli_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return Result(mode, n, min(times), statistics.median(times), commands, rss,
                  min(w for w, _ in cli_runs), min(c for _, c in cli_runs), cli_rss, min(cpus))


def bench_local(n: int, repeat: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        base = Path(tmp) / "files"
        base.mkdir()
        for i in range(n):
            path = base / f"f{i:04d}.conf"
            path.write_text(content(i))
            path.chmod(0o644)
        write_spec(Path(tmp) / "spec", {"connect": "local"}, str(base), n)
        return measure("local", Path(tmp) / "spec", n, repeat)


def bench_ssh(n: int, repeat: int) -> Result:
    from testbed.hosts import install_signal_handlers, start_host

    install_signal_handlers()
    with start_host("bench") as host, tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        host.exec("mkdir -p /srv/bench && cd /srv/bench && "
                  f"for i in $(seq 0 {n - 1}); do "
                  "  f=$(printf 'f%04d.conf' $i); printf 'file %d: some configuration line\\n' $i > $f; "
                  "done && chmod 0644 /srv/bench/*")
        entry = {"connect": host.ssh_url, "identity_file": str(host.key_path),
                 "known_hosts": str(host.known_hosts_path)}
        write_spec(Path(tmp) / "spec", entry, "/srv/bench", n)
        return measure("ssh", Path(tmp) / "spec", n, repeat)


def report(r: Result) -> bool:
    ok_time = r.in_process_best < TARGET_SECONDS[r.mode]
    ok_cli = r.cli_best < TARGET_SECONDS[r.mode]
    ok_commands = r.commands <= TARGET_COMMANDS

    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(f"[{r.mode}] no-op plan of {r.files} files")
    print(f"  in-process wall time : best {r.in_process_best:.3f} s, median {r.in_process_median:.3f} s, "
          f"CPU {r.in_process_cpu:.3f} s (target < {TARGET_SECONDS[r.mode]} s: {mark(ok_time)})")
    print(f"  CLI wall time        : best {r.cli_best:.3f} s, CPU {r.cli_cpu:.3f} s, interpreter start "
          f"and imports included (target < {TARGET_SECONDS[r.mode]} s: {mark(ok_cli)})")
    print(f"  remote commands/host : {r.commands} (target <= {TARGET_COMMANDS}: {mark(ok_commands)})")
    print(f"  peak RSS             : {r.rss_mib:.0f} MiB in-process, {r.cli_rss_mib:.0f} MiB CLI")
    return ok_time and ok_cli and ok_commands


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mode", choices=["local", "ssh", "both"], default="both")
    args = parser.parse_args()
    configure(fmt="console", verbose=-1)  # warnings only: debug lines would be timed too
    runs: list[Callable[[int, int], Result]] = []
    if args.mode in ("local", "both"):
        runs.append(bench_local)
    if args.mode in ("ssh", "both"):
        runs.append(bench_ssh)
    ok = True
    for run in runs:
        ok = report(run(args.files, args.repeat)) and ok
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
