"""Benchmark: the GitOps controller's reaction times and memory on a real host.

    .venv/bin/python bench/bench_controller.py [--repeat 10] [--files 20]

Starts a throwaway test host (label ``io.reconciler.testbed=1``, removed at exit),
installs reconciler in it, creates a git repository there whose spec manages
``--files`` files with ``connect: local``, and runs the controller as the systemd
service ``reconcile install-service`` sets up (default intervals: fetch 30 s, drift
60 s, so what is measured is the event path, not the timers). The timing loops run
*inside* the host, so ``docker exec`` latency is not counted:

* commit -> converged: from ``git commit`` returning to the managed file having the
  new content (``--repeat`` commits, each changing one file);
* drift -> corrected: from a hand edit of a managed file to its content restored;
* steady RSS: the controller's resident memory after the runs (VmRSS), and its peak (VmHWM).

Targets: commit -> converged <= 3 s, drift -> corrected <= 5 s (worst of the runs),
steady RSS <= 80 MB. Prints each figure against its target; exits 1 if one is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testbed.hosts import TestHost, start_host  # noqa: E402
from testbed.wheelhouse import install_reconciler  # noqa: E402

TARGET_COMMIT = 3.0
TARGET_DRIFT = 5.0
TARGET_RSS_MB = 80.0
REPO = "/srv/bench-gitops"

# Runs on the host. argv: repo, files, repeat. Prints one JSON object.
MEASURE = r"""
import json, os, statistics, subprocess, sys, time
repo, files, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def spec(version):
    lines = ["files:"]
    for i in range(files):
        v = version if i == 0 else 0
        lines += [f"  - path: /srv/bench/f{i:02d}.conf", f"    content: \"f{i:02d} v{v}\\n\""]
    return "\n".join(lines) + "\n"

def read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return None

def wait(path, want, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read(path) == want:
            return True
        time.sleep(0.002)
    return False

commit, drift = [], []
target = "/srv/bench/f00.conf"
for n in range(1, repeat + 1):
    with open(f"{repo}/specs/files.yaml", "w") as fh:
        fh.write(spec(n))
    subprocess.run(["git", "-C", repo, "commit", "-q", "-am", f"v{n}"], check=True)
    start = time.monotonic()
    if not wait(target, f"f00 v{n}\n"):
        sys.exit(f"commit v{n} was not applied within 30 s")
    commit.append(time.monotonic() - start)
    time.sleep(1.0)  # let the controller settle (its own drift check of the new state)

for n in range(repeat):
    want = read(target)
    start = time.monotonic()
    with open(target, "w") as fh:
        fh.write(f"edited by hand {n}\n")
    if not wait(target, want):
        sys.exit(f"drift {n} was not corrected within 30 s")
    drift.append(time.monotonic() - start)
    time.sleep(1.0)

pid = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", "reconciler-controller.service"],
                     capture_output=True, text=True, check=True).stdout.strip()
time.sleep(3)
mem = {}
with open(f"/proc/{pid}/status") as fh:
    for line in fh:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            mem[key] = int(value.split()[0]) / 1024
print(json.dumps({"commit": commit, "drift": drift, "rss_mb": mem["VmRSS"], "peak_mb": mem["VmHWM"]}))
"""

SETUP = r"""
set -e
repo=$1; files=$2
mkdir -p "$repo/specs" && cd "$repo"
git init -q -b main && git config user.email bench@example.com && git config user.name bench
printf 'hosts:\n  local:\n    connect: local\n' > specs/hosts.yaml
{ echo "files:"; for i in $(seq 0 $((files - 1))); do n=$(printf %02d "$i");
  printf '  - path: /srv/bench/f%s.conf\n    content: "f%s v0\\n"\n' "$n" "$n"; done; } > specs/files.yaml
git add -A && git commit -qm v0
reconcile install-service --repo "$repo" --path specs >/dev/null
for i in $(seq 1 300); do [ -e /srv/bench/f00.conf ] && exit 0; sleep 0.1; done
echo "the first commit was not applied" >&2
journalctl -u reconciler-controller --no-pager | tail -20 >&2
exit 1
"""


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "MISSED"


def run(host: TestHost, files: int, repeat: int) -> dict[str, object]:
    started = time.monotonic()
    install_reconciler(host)
    host.exec(["bash", "-c", SETUP, "setup", REPO, str(files)], timeout=300)
    print(f"[bench] host ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    out = host.exec(["python3", "-c", MEASURE, REPO, str(files), str(repeat)], timeout=600).stdout
    result: dict[str, object] = json.loads(out)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args()
    host = start_host("bench-controller")
    try:
        result = run(host, args.files, args.repeat)
    finally:
        host.remove()
    commit = sorted(result["commit"])  # type: ignore[type-var]
    drift = sorted(result["drift"])  # type: ignore[type-var]
    rss = float(result["rss_mb"])  # type: ignore[arg-type]
    peak = float(result["peak_mb"])  # type: ignore[arg-type]
    worst_commit, worst_drift = commit[-1], drift[-1]
    print(f"spec: {args.files} files, connect: local; {args.repeat} runs each")
    print(f"commit -> converged: median {commit[len(commit) // 2]:.3f}s, worst {worst_commit:.3f}s "
          f"(target <= {TARGET_COMMIT:.0f}s) {verdict(worst_commit, TARGET_COMMIT)}")
    print(f"drift -> corrected:  median {drift[len(drift) // 2]:.3f}s, worst {worst_drift:.3f}s "
          f"(target <= {TARGET_DRIFT:.0f}s) {verdict(worst_drift, TARGET_DRIFT)}")
    print(f"steady RSS: {rss:.1f} MB, peak {peak:.1f} MB (target <= {TARGET_RSS_MB:.0f} MB) "
          f"{verdict(rss, TARGET_RSS_MB)}")
    missed = worst_commit > TARGET_COMMIT or worst_drift > TARGET_DRIFT or rss > TARGET_RSS_MB
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
