"""Benchmark: reconcile against the OpenSSH floor, on the workload of issue 14.

    .venv/bin/python bench/bench_floor.py [--repeat 5] [--many 1000]

Starts one test host (label ``io.reconciler.testbed=1``, removed at exit) and uses the
spec in ``bench/workload/`` (10 directories, 50 files, 5 hardened units, an nginx
site, a cron file from a retention job, an nft table). Prints, in one run:

* the OpenSSH floor: one ``ssh host CMD`` with the same key, where CMD gathers the
  same facts the reconciler reads (``stat`` and ``sha256sum`` of the paths,
  ``systemctl show`` of the units, the site and cron files, ``nft -j list ruleset``);
  best of ``--repeat``;
* first converge (``reconcile apply``, CLI wall time);
* the no-op plan (``reconcile plan``, CLI wall time, best of ``--repeat``), with the
  remote commands it sends (counted in-process with the same engine) and the CLI's
  peak RSS; and the same plan in-process (connection, agent start, observe and diff,
  without the interpreter's start-up and imports, which are not the transport's);
* one file changed (``reconcile apply``);
* ``--many`` files created in one apply, and their no-op plan.

Targets (issue 14): no-op <= 1.5x the floor and <= 3 remote commands, first converge
<= 2 s, one file changed <= 0.5 s, 1,000 files created <= 5 s and their no-op
<= 0.5 s. Every figure is printed against its target; the exit code is 0 either way
(a loaded machine is not a regression).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.engine import Engine  # noqa: E402
from reconciler.logs import configure  # noqa: E402
from reconciler.spec import load_spec  # noqa: E402
from testbed.hosts import TestHost, install_signal_handlers, start_host  # noqa: E402

RECONCILE = Path(sys.executable).with_name("reconcile")
WORKLOAD = ROOT / "bench" / "workload"


@dataclass
class Run:
    seconds: float
    rss_mib: float
    code: int
    stdout: str
    stderr: str


def cli(*args: str | Path) -> Run:
    """``reconcile ARGS`` as a user runs it: wall time and the child's peak RSS."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([str(RECONCILE), *map(str, args)], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(elapsed, usage.ru_maxrss / 1024, proc.returncode, out.read().decode(), err.read().decode())


def spec_paths(spec_dir: Path) -> tuple[list[str], list[str], list[str]]:
    data = yaml.safe_load((spec_dir / "workload.yaml").read_text())
    files = [f["path"] for f in data["files"]]
    dirs = [d["path"] for d in data["directories"]]
    units = [f"{s['name']}.service" for s in data["services"]]
    return files, dirs, units


def floor_command(spec_dir: Path) -> str:
    files, dirs, units = spec_paths(spec_dir)
    q = shlex.join
    return "; ".join([
        f"stat --printf '%n %F %U %G %a %s\\n' -- {q(files + dirs)} /etc/nginx/sites-enabled/work "
        "/etc/cron.d/reconciler-retention-work-logs 2>/dev/null",
        f"sha256sum -- {q(files)} 2>/dev/null",
        f"systemctl show -p Id,ActiveState,UnitFileState,FragmentPath -- {q(units)}",
        f"cat /etc/nginx/sites-available/work.conf /etc/cron.d/reconciler-retention-work-logs "
        f"{q(['/etc/systemd/system/' + u for u in units])} 2>/dev/null",
        "nft -j list ruleset >/dev/null",
        "true",
    ])


def ssh_floor(host: TestHost, spec_dir: Path, repeat: int) -> float:
    if shutil.which("ssh") is None:
        raise SystemExit("the OpenSSH client (ssh) is needed for the floor")
    command = floor_command(spec_dir)
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        subprocess.run([*host.ssh_argv(), command], check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - started)
    return min(times[1:])


def engine_commands(spec_dir: Path, repeat: int = 1) -> tuple[int, int, float]:
    """(remote commands, planned changes, best wall seconds) of a plan in this process:
    connect, start the agent, observe, diff; no interpreter start-up or imports."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        spec, diags = load_spec(str(spec_dir))
        assert spec is not None, [str(d) for d in diags.items]
        with Engine(spec) as engine:
            plan = engine.plan()
            assert not plan.has_errors, [h.error for h in plan.hosts]
            commands, changes = engine.commands_run()["web"], len(plan.changes)
        best = min(best, time.perf_counter() - started)
    return commands, changes, best


def apply_commands(run: Run) -> int | None:
    for line in run.stderr.splitlines():
        if '"apply finished"' in line:
            data: dict[str, Any] = json.loads(line)
            return int(sum(data.get("commands", {}).values()))
    return None


def write_hosts(spec_dir: Path, host: TestHost) -> None:
    (spec_dir / "hosts.yaml").write_text(yaml.safe_dump({"hosts": {"web": {
        "connect": host.ssh_url, "identity_file": str(host.key_path),
        "known_hosts": str(host.known_hosts_path)}}}))


def check(run: Run, what: str) -> Run:
    if run.code not in (0, 2):
        raise SystemExit(f"{what} exited {run.code}:\n{run.stdout}\n{run.stderr}")
    return run


def line(label: str, seconds: float, target: float | None, extra: str = "") -> None:
    mark = "" if target is None else f" (target <= {target:g} s: {'ok' if seconds <= target else 'MISSED'})"
    print(f"  {label:<28}: {seconds:6.3f} s{mark}{extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--many", type=int, default=1000)
    args = parser.parse_args()
    configure(fmt="console", verbose=-1)
    install_signal_handlers()
    with start_host("bench-floor") as host, tempfile.TemporaryDirectory(prefix="reconciler-floor-") as tmp:
        spec_dir = Path(tmp) / "spec"
        shutil.copytree(WORKLOAD, spec_dir)
        write_hosts(spec_dir, host)
        cli("validate", spec_dir)  # warm-up: bytecode cache, as an install would have it

        first = check(cli("apply", spec_dir, "--log-format", "json", "-v"), "first converge")
        noops = [check(cli("plan", spec_dir, "--detailed-exitcode"), "no-op plan")
                 for _ in range(args.repeat)]
        assert all(r.code == 0 for r in noops), noops[0].stdout
        noop_commands, noop_changes, noop_in_process = engine_commands(spec_dir, args.repeat)
        assert noop_changes == 0
        floor = ssh_floor(host, spec_dir, args.repeat)

        workload = spec_dir / "workload.yaml"
        text = workload.read_text()
        workload.write_text(text.replace("key_7 = value 7", "key_7 = value 7 changed"))
        one = check(cli("apply", spec_dir, "--log-format", "json", "-v"), "one file changed")

        data = yaml.safe_load(workload.read_text())
        data["directories"].append({"path": "/srv/many", "mode": "0755"})
        data["files"] += [{"path": f"/srv/many/m{i:04d}.conf", "content": f"many {i}\n"}
                          for i in range(args.many)]
        workload.write_text(yaml.safe_dump(data, sort_keys=False))
        many = check(cli("apply", spec_dir, "--log-format", "json", "-v"), "many files created")
        many_noops = [check(cli("plan", spec_dir, "--detailed-exitcode"), "many no-op")
                      for _ in range(args.repeat)]
        many_commands, many_changes, many_in_process = engine_commands(spec_dir, args.repeat)
        assert many_changes == 0 and all(r.code == 0 for r in many_noops)

        best_noop = min(r.seconds for r in noops)
        best_many_noop = min(r.seconds for r in many_noops)
        print(f"workload: {WORKLOAD.relative_to(ROOT)} on one test host, over SSH, "
              f"best of {args.repeat} where repeated")
        line("OpenSSH floor (one ssh exec)", floor, None)
        line("no-op plan (CLI)", best_noop, round(1.5 * floor, 3),
             f", {best_noop / floor:.2f}x the floor, {noop_commands} remote commands "
             f"(target <= 3: {'ok' if noop_commands <= 3 else 'MISSED'}), peak RSS "
             f"{max(r.rss_mib for r in noops):.0f} MiB")
        line("no-op plan (in-process)", noop_in_process, None,
             f", {noop_in_process / floor:.2f}x the floor (no interpreter start-up or imports)")
        line("first converge (CLI)", first.seconds, 2.0, f", {apply_commands(first)} remote commands")
        line("one file changed (CLI)", one.seconds, 0.5, f", {apply_commands(one)} remote commands")
        line(f"{args.many} files created (CLI)", many.seconds, 5.0,
             f", {apply_commands(many)} remote commands")
        line("their no-op plan (CLI)", best_many_noop, 0.5,
             f", {many_commands} remote commands, peak RSS {max(r.rss_mib for r in many_noops):.0f} MiB")
        line("their no-op plan (in-process)", many_in_process, None)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
