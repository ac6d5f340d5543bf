"""Soak benchmark: the GitOps controller under steady load for a long time.

    .venv/bin/python bench/bench_soak.py [--minutes 30] [--drift-every 1] [--commit-every 10]
        [--history-max-size 256KB] [--drift-target 5] [--tracemalloc] [--keep]
        [--env NAME=VALUE]

Starts one throwaway test host (label ``io.reconciler.testbed=1``, removed at exit) and
runs ``reconcile watch`` on this machine (``--drift-interval 1s``, default health grace)
against a git repository in a temporary directory whose spec manages ten files on the
host over SSH, with one health check. Then, for ``--minutes``:

* drift: a script on the host overwrites ``/srv/soak/drift.conf`` by hand every
  ``--drift-every`` seconds (the next one once the last is corrected, and at least half a
  second later) and times, on the host, how long until the controller restored it;
* commits: every ``--commit-every`` seconds this script commits new content for
  ``/srv/soak/commit.conf`` (another file); the host script notes when it arrives
  (the container shares this machine's clock).

Every minute it prints the controller's RSS, open descriptors and threads (from /proc;
the threads and descriptors that persist, not a run's workers),
the state directory's size and its history's, commits made / applied / rolled back,
drifts made / corrected / missed, drift made -> restored and commit -> on the host
(median and worst), the controller's mean run time per cause in that minute (from
/metrics), and the load average.

Targets, with a verdict at the end (exit 1 when one is missed): no good commit rolled
back and every commit applied; every drift corrected within ``--drift-target`` seconds;
after the first 3 minutes RSS grows by less than 1 MB per hour (least-squares slope),
descriptors and threads stay flat (within 3 of each other); the history stays under
its bound (plus one segment). ``--tracemalloc`` runs the controller under tracemalloc
and prints what grew between minute 3 and the end (slower; RSS is then not the product's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.controller.config import parse_size  # noqa: E402
from reconciler.controller.history import History, HistoryLimits  # noqa: E402
from testbed.hosts import TestHost, start_host  # noqa: E402

RECONCILE = str(Path(sys.executable).with_name("reconcile"))
DRIFT = "/srv/soak/drift.conf"
COMMITTED = "/srv/soak/commit.conf"
WANT_DRIFT = "listen 8080\n"
STATIC = 8
RESULTS = "/var/tmp/soak-results.jsonl"  # outside every managed path
RSS_TARGET_MB_PER_HOUR = 1.0

# Runs on the host. argv: drift path, wanted content, commit path, every, target, seconds, results.
HOST_SCRIPT = r"""
import json, sys, time
drift, want, committed, every, target, seconds, out = sys.argv[1:8]
every, target, seconds = float(every), float(target), float(seconds)

def read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None

results = open(out, "a", buffering=1)
end = time.time() + seconds
last_commit = read(committed)
pending = None
next_drift = time.time()
n = 0
while time.time() < end:
    now = time.time()
    current = read(committed)
    if current != last_commit:
        results.write(json.dumps({"kind": "commit", "content": current, "at": now}) + "\n")
        last_commit = current
    if pending is None and now >= next_drift:
        n += 1
        with open(drift, "w") as fh:  # by hand: truncate and write, not atomic
            fh.write(f"edited by hand {n}\n")
        pending = (n, time.time())
    elif pending is not None:
        made = pending[1]
        if read(drift) == want:
            record = {"kind": "drift", "n": pending[0], "made": made, "seconds": now - made}
            results.write(json.dumps(record) + "\n")
            next_drift = max(made + every, now + 0.5)
            pending = None
        elif now - made > target:
            results.write(json.dumps({"kind": "drift", "n": pending[0], "made": made, "missed": True}) + "\n")
            next_drift = now + every
            pending = None
    time.sleep(0.02)
"""

# Runs the controller under tracemalloc; argv: snapshot dir, period, then reconcile's arguments.
TRACED = r"""
import os, sys, threading, time, tracemalloc
tracemalloc.start(10)
out, period = sys.argv[1], float(sys.argv[2])
def dump():
    n = 0
    while True:
        time.sleep(period)
        n += 1
        tracemalloc.take_snapshot().dump(os.path.join(out, f"snap-{n:03d}.bin"))
threading.Thread(target=dump, name="soak-tracemalloc", daemon=True).start()
from reconciler.cli import main
sys.argv = ["reconcile", *sys.argv[3:]]
sys.exit(main())
"""


def spec(version: int) -> str:
    lines = ["files:", f"  - path: {DRIFT}", f"    content: {json.dumps(WANT_DRIFT)}",
             f"  - path: {COMMITTED}", f"    content: \"commit {version}\\n\""]
    for i in range(STATIC):
        lines += [f"  - path: /srv/soak/static-{i}.conf", f"    content: \"static {i}\\n\""]
    return "\n".join(lines) + "\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def proc_figures(pid: int) -> dict[str, float]:
    """RSS, and the threads and descriptors that persist: the fewest of five looks a
    fifth of a second apart (a run's worker threads and SSH channels come and go)."""
    fields: dict[str, float] = {"threads": float("inf"), "fds": float("inf")}
    for look in range(5):
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key == "VmRSS":
                    fields["rss_mb"] = int(value.split()[0]) / 1024
                elif key == "Threads":
                    fields["threads"] = min(fields["threads"], int(value))
        fields["fds"] = min(fields["fds"], len(os.listdir(f"/proc/{pid}/fd")))
        if look < 4:
            time.sleep(0.2)
    return fields


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def mean_run(now: dict[Any, float], before: dict[Any, float], cause: str) -> str:
    key_sum = ("reconciler_controller_run_duration_seconds_sum", (("cause", cause),))
    key_count = ("reconciler_controller_run_duration_seconds_count", (("cause", cause),))
    count = now.get(key_count, 0) - before.get(key_count, 0)
    if count <= 0:
        return "-"
    return f"{(now.get(key_sum, 0) - before.get(key_sum, 0)) / count:.2f}s x{count:.0f}"


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 3600


def median_max(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}/{max(values):.2f}s" if values else "-"


class Soak:
    def __init__(self, args: argparse.Namespace, host: TestHost, work: Path) -> None:
        self.args = args
        self.host = host
        self.work = work
        self.repo = work / "repo"
        self.state = work / "state"
        self.port = _free_port()
        self.commits: dict[int, tuple[str, float]] = {}
        self.results: dict[str, str] = {}
        self.version = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.snapshots = work / "snapshots"

    def setup(self) -> None:
        self.repo.mkdir(parents=True)
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "config", "user.email", "soak@example.com")
        git(self.repo, "config", "user.name", "soak")
        (self.repo / "specs").mkdir()
        (self.repo / "specs" / "hosts.yaml").write_text(
            f"hosts:\n  web:\n    connect: {json.dumps(self.host.ssh_url)}\n"
            f"    identity_file: {json.dumps(str(self.host.key_path))}\n"
            f"    known_hosts: {json.dumps(str(self.host.known_hosts_path))}\n")
        (self.repo / "specs" / "soak.yaml").write_text(spec(0))
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "soak v0")
        self.state.mkdir()
        (self.state / "controller.yaml").write_text(
            f"history_max_size: {self.args.history_max_size}\n"
            f"health:\n  checks:\n    - {{name: committed, command: [test, -s, {COMMITTED}]}}\n")
        argv = ["watch", "--repo", str(self.repo), "--path", "specs", "--state-dir", str(self.state),
                "--listen", f"127.0.0.1:{self.port}", "--drift-interval", "1s", "--log-format", "json"]
        if self.args.tracemalloc:
            self.snapshots.mkdir()
            command = [sys.executable, "-c", TRACED, str(self.snapshots), "60", *argv]
        else:
            command = [RECONCILE, *argv]
        log = (self.work / "controller.log").open("wb")
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        env.update(dict(pair.split("=", 1) for pair in self.args.env))
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 600
        while not (self.state / "status.json").exists() or \
                (json.loads((self.state / "status.json").read_text()).get("last_applied") is None):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the first commit was not applied:\n" + self.log_tail())
            time.sleep(0.5)

    def log_tail(self) -> str:
        return (self.work / "controller.log").read_text(errors="replace")[-4000:]

    def commit(self) -> None:
        self.version += 1
        (self.repo / "specs" / "soak.yaml").write_text(spec(self.version))
        git(self.repo, "commit", "-qam", f"soak v{self.version}")
        self.commits[self.version] = (git(self.repo, "rev-parse", "HEAD").strip(), time.time())

    def host_results(self) -> list[dict[str, Any]]:
        out = self.host.exec(["cat", RESULTS], check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def history(self) -> list[dict[str, Any]]:
        return list(History(self.state).entries())

    def run(self) -> int:
        args = self.args
        assert self.proc is not None
        seconds = args.minutes * 60
        self.host.exec(["sh", "-c", f"cat > /var/tmp/soak_host.py && rm -f {RESULTS} && "
                        f"(nohup python3 /var/tmp/soak_host.py {DRIFT} '{WANT_DRIFT}' {COMMITTED} "
                        f"{args.drift_every} {args.drift_target} {seconds + 30} {RESULTS} "
                        ">/var/tmp/soak_host.log 2>&1 &)"], input=HOST_SCRIPT)
        start = time.time()
        next_commit = start + args.commit_every
        samples: list[dict[str, float]] = []
        before = metrics(self.port)
        print(f"{'min':>3} {'rss MB':>7} {'fds':>4} {'thr':>4} {'state KB':>8} {'hist KB':>7} "
              f"{'commits':>13} {'drifts':>13} {'drift fix':>11} {'commit->host':>12} "
              f"{'run: drift':>13} {'run: commit':>13} {'load':>5}", flush=True)
        print(f"{'':>3} {'':>7} {'':>4} {'':>4} {'':>8} {'':>7} {'made/ok/rb':>13} "
              f"{'made/ok/miss':>13} {'med/max':>11} {'med/max':>12}", flush=True)
        minute = 0
        while time.time() - start < seconds:
            if self.proc.poll() is not None:
                raise SystemExit("the controller exited:\n" + self.log_tail())
            now = time.time()
            if now >= next_commit:
                self.commit()
                next_commit += args.commit_every
            if now - start >= 60 * (minute + 1):
                minute += 1
                figures = proc_figures(self.proc.pid)
                figures["t"] = now - start
                samples.append(figures)
                current = metrics(self.port)
                report = self.account()
                print(f"{minute:>3} {figures['rss_mb']:>7.1f} {figures['fds']:>4.0f} "
                      f"{figures['threads']:>4.0f} "
                      f"{dir_bytes(self.state) / 1024:>8.0f} {History(self.state).size() / 1024:>7.0f} "
                      f"{report['commits']:>4}/{report['applied']:>4}/{report['rolled_back']:>3} "
                      f"{report['drifts']:>4}/{report['corrected']:>4}/{report['missed']:>3} "
                      f"{median_max(report['drift_seconds_minute']):>11} "
                      f"{median_max(report['commit_seconds_minute']):>12} "
                      f"{mean_run(current, before, 'drift'):>13} {mean_run(current, before, 'commit'):>13} "
                      f"{os.getloadavg()[0]:>5.1f}", flush=True)
                before = current
                self._minute_start = now
            time.sleep(0.1)
        time.sleep(args.commit_every)  # let the last commit land
        return self.verdict(samples)

    _minute_start = 0.0

    def account(self) -> dict[str, Any]:
        results = self.host_results()
        drifts = [r for r in results if r["kind"] == "drift"]
        arrivals = {r["content"]: r["at"] for r in results if r["kind"] == "commit"}
        commit_seconds: list[tuple[float, float]] = []
        for version, (_sha, made) in self.commits.items():
            at = arrivals.get(f"commit {version}\n")
            if at is not None:
                commit_seconds.append((made, at - made))
        history = self.history()
        # Remembered across minutes: compaction drops old entries (the bound is small on purpose).
        self.results.update({e["revision"]: e["result"] for e in history if e.get("cause") == "commit"})
        by_revision = self.results
        shas = [sha for sha, _ in self.commits.values()]
        since = self._minute_start
        return {
            "commits": len(shas),
            "applied": sum(1 for s in shas if by_revision.get(s) in ("applied", "unchanged")),
            "rolled_back": sum(1 for s in shas if by_revision.get(s) in ("rolled-back", "failed")),
            "not_applied": [f"{s[:12]} ({by_revision.get(s, 'not tried: a newer commit came first')})"
                            for s in shas if by_revision.get(s) not in ("applied", "unchanged")],
            "superseded": sum(1 for s in shas if s not in by_revision),
            "drifts": len(drifts),
            "corrected": sum(1 for d in drifts if not d.get("missed")),
            "missed": sum(1 for d in drifts if d.get("missed")),
            "drift_seconds": [d["seconds"] for d in drifts if not d.get("missed")],
            "drift_seconds_minute": [d["seconds"] for d in drifts
                                     if not d.get("missed") and d["made"] >= since],
            "commit_seconds": [s for _, s in commit_seconds],
            "commit_seconds_minute": [s for m, s in commit_seconds if m >= since],
            "drift_entries": History(self.state).summary()["counts"].get("drift/corrected", 0),
        }

    def verdict(self, samples: list[dict[str, float]]) -> int:
        report = self.account()
        settled = [s for s in samples if s["t"] >= 180] or samples
        rss_slope = slope_per_hour([(s["t"], s["rss_mb"]) for s in settled])
        fds = [s["fds"] for s in settled]
        threads = [s["threads"] for s in settled]
        bound = parse_size(self.args.history_max_size) + HistoryLimits(
            max_bytes=parse_size(self.args.history_max_size)).segment_bytes
        history_bytes = History(self.state).size()
        # The last commit may still be in its health grace; it is not a failure.
        not_applied = report["not_applied"][:-1]
        checks = [
            ("no good commit rolled back", report["rolled_back"] == 0,
             f"{report['rolled_back']} rolled back"),
            ("every commit applied", not not_applied,
             f"{report['applied']} of {report['commits']} applied"
             + (f"; not: {not_applied}" if not_applied else "")),
            ("every drift corrected", report["missed"] == 0 and report["corrected"] > 0,
             f"{report['corrected']} of {report['drifts']} corrected within {self.args.drift_target:g}s, "
             f"median/worst {median_max(report['drift_seconds'])}"),
            ("RSS flat", rss_slope < RSS_TARGET_MB_PER_HOUR,
             f"{rss_slope:+.2f} MB/h after minute 3 "
             f"({settled[0]['rss_mb']:.1f} -> {settled[-1]['rss_mb']:.1f} MB)"),
            ("descriptors flat", max(fds) - min(fds) <= 3, f"{min(fds):.0f}..{max(fds):.0f}"),
            ("threads flat", max(threads) - min(threads) <= 3, f"{min(threads):.0f}..{max(threads):.0f}"),
            ("history within its bound", history_bytes <= bound,
             f"{history_bytes / 1024:.0f} KB of {bound / 1024:.0f} KB "
             f"({self.args.history_max_size} + one segment); "
             f"state dir {dir_bytes(self.state) / 1024:.0f} KB"),
        ]
        summary = History(self.state).summary()
        print(f"\ncommit -> on the host: median/worst {median_max(report['commit_seconds'])}; "
              f"drift corrections recorded (burst counts included): {report['drift_entries']}; "
              f"history: {summary['entries']} entries, {summary['compacted']} compacted, "
              f"{summary['bytes'] / 1024:.0f} KB")
        for name, ok, detail in checks:
            print(f"{name:28} {'ok' if ok else 'MISSED':6} {detail}")
        if self.args.tracemalloc:
            self.print_growth()
        return 0 if all(ok for _, ok, _ in checks) else 1

    def print_growth(self) -> None:
        snaps = sorted(self.snapshots.glob("snap-*.bin"))
        if len(snaps) < 4:
            print("tracemalloc: too few snapshots")
            return
        first, last = tracemalloc.Snapshot.load(str(snaps[2])), tracemalloc.Snapshot.load(str(snaps[-1]))
        print(f"\ntracemalloc: growth from {snaps[2].name} to {snaps[-1].name} (top 15 by line)")
        for stat in last.compare_to(first, "lineno")[:15]:
            print(f"  {stat}")
        top = last.compare_to(first, "traceback")[:1]
        if top:
            print("  the largest, by traceback:")
            for line in top[0].traceback.format()[-12:]:
                print(f"    {line}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--drift-every", type=float, default=1.0)
    parser.add_argument("--commit-every", type=float, default=10.0)
    parser.add_argument("--drift-target", type=float, default=5.0,
                        help="seconds a drift may take to be corrected (bench_controller: 5)")
    parser.add_argument("--history-max-size", default="256KB")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the controller (e.g. MALLOC_ARENA_MAX=2)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the state directory and the controller's log")
    args = parser.parse_args()
    print(f"soak: {args.minutes:g} min, drift every {args.drift_every:g}s, "
          f"commit every {args.commit_every:g}s, "
          f"history bound {args.history_max_size}, {os.cpu_count()} CPUs", flush=True)
    host = start_host("bench-soak")
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    soak = Soak(args, host, work)
    try:
        soak.setup()
        return soak.run()
    finally:
        soak.stop()
        host.remove()
        if args.keep:
            print(f"state, repository and controller log kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
