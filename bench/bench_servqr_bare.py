"""Benchmark: ServQR's first converge on a bare Debian 12 host, cold and warm package cache.

    .venv/bin/python bench/bench_servqr_bare.py [--cold] [--runs 1]

Starts a throwaway *bare* test host (systemd, sshd, sudo, python3 and nothing else;
label ``io.reconciler.testbed=1``, removed at exit), stages the PostgreSQL image for the
Docker engine the spec installs, adds the user ``deploy`` with sudo, and times one
``reconcile apply`` of a copy of ``specs/servqr`` pointed at it as deploy with
``become: sudo`` (the CLI as a user runs it), then checks the seed's health checks and
that a second plan is empty.

``--cold`` empties the test bed's package cache first (testbed/aptcache.py: the
apt-cacher-ng container is removed and its data directory moved aside, then restored
after the run, so nothing is lost), so every package and package list comes from
Debian's mirror through the cache; without it the cache is used as it is (warm once
any run has installed the same packages). Prints the figures; no targets, no assertion
on time (the machine may be shared).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testbed import aptcache  # noqa: E402
from testbed.hosts import cleanup_session, install_signal_handlers, start_host  # noqa: E402
from testbed.images import ensure_images  # noqa: E402
from testbed.servqr import copy_spec, health_checks, stage_images  # noqa: E402
from testbed.util import cache_dir, run  # noqa: E402

RECONCILE = str(ROOT / ".venv" / "bin" / "reconcile")


def reconcile(*args: str) -> tuple[int, float, str]:
    started = time.monotonic()
    proc = subprocess.run([RECONCILE, *args, "--color", "never"], capture_output=True, text=True, check=False,
                          timeout=3600)
    return proc.returncode, time.monotonic() - started, proc.stdout + proc.stderr


def one_run(run_no: int) -> dict[str, float | int | bool]:
    images = ensure_images()
    t0 = time.monotonic()
    host = start_host(f"bench-bare-{run_no}", image=images.bare)
    booted = time.monotonic() - t0
    try:
        t1 = time.monotonic()
        stage_images(host, images)
        staged = time.monotonic() - t1
        host.add_sudo_user("deploy")
        with tempfile.TemporaryDirectory(prefix="bench-servqr-") as tmp:
            spec = copy_spec(Path(tmp))
            hosts_file = spec / "hosts.yaml"
            data = yaml.safe_load(hosts_file.read_text())
            data["hosts"]["servqr"] = {"connect": host.ssh_url_as("deploy"), "become": "sudo",
                                       "identity_file": str(host.key_path),
                                       "known_hosts": str(host.known_hosts_path),
                                       "vars": data["hosts"]["servqr"]["vars"]}
            hosts_file.write_text(yaml.safe_dump(data, sort_keys=False))
            code, apply_s, out = reconcile("apply", str(spec))
            if code != 0:
                print(out[-4000:], file=sys.stderr)
            again, _, _ = reconcile("plan", "--detailed-exitcode", str(spec))
        healthy = all(c.ok for c in health_checks(host))
        return {"boot_s": booted, "stage_s": staged, "apply_s": apply_s, "apply_exit": code,
                "second_plan_exit": again, "healthy": healthy}
    finally:
        host.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="empty the package cache first")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    install_signal_handlers()
    data = cache_dir() / "apt-cacher-ng"
    aside = cache_dir() / f"apt-cacher-ng.bench-aside-{int(time.time())}"
    if args.cold:
        run(["docker", "rm", "-f", aptcache.CONTAINER], check=False, timeout=120)
        if data.exists():
            data.rename(aside)
    try:
        for n in range(args.runs):
            result = one_run(n)
            print(f"{'cold' if args.cold and n == 0 else 'warm'} cache: host ready {result['boot_s']:.1f} s, "
                  f"image staged {result['stage_s']:.1f} s, first apply {result['apply_s']:.1f} s "
                  f"(exit {result['apply_exit']}), second plan exit {result['second_plan_exit']}, "
                  f"health {'ok' if result['healthy'] else 'FAILED'}", flush=True)
    finally:
        cleanup_session()
        if args.cold and aside.exists():
            run(["docker", "rm", "-f", aptcache.CONTAINER], check=False, timeout=120)
            shutil.rmtree(data, ignore_errors=True)
            aside.rename(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
