"""The host lock: one apply at a time per host.

While one apply holds the lock, a second one with ``--lock-timeout 1`` gives up with
a clear message and exit 1, and one with a longer timeout waits, then plans against
the first one's result (nothing left to do). The lock lives as long as the run's SSH
connection, so a run that is killed leaves no stale lock behind.

To make "while the first holds it" certain on a fast or a loaded machine alike, the
test freezes the first apply (SIGSTOP to the process it started) once the lock is
really held on the host (``flock -n`` fails), and thaws it (SIGCONT) when the
second and third runs are in place.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import RECONCILE, reconcile, write_spec

LOCK_FILE = "/run/lock/reconciler.lock"
MANY = 200


def lock_held(host: TestHost) -> bool:
    return host.exec(["flock", "-n", LOCK_FILE, "true"], check=False).returncode != 0


def start_long_apply(spec: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(RECONCILE), "apply", str(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_lock(host: TestHost, first: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not lock_held(host):
        assert first.poll() is None, f"the first apply ended before it held the lock: {first.communicate()}"
        assert time.monotonic() < deadline, "the first apply never took the lock"
        time.sleep(0.1)


def many_files_spec(tmp_path: Path, host: TestHost) -> Path:
    files = [{"path": f"/srv/lock/f{i:04d}", "content": f"{i}\n"} for i in range(MANY)]
    return write_spec(tmp_path / "spec", {"web": host}, {"files": files})


def waiting_on_host(host: TestHost) -> bool:
    """A run is queued on the lock: a process on the host is blocked in flock(2) on the
    lock file (a ``->`` line of /proc/locks for its inode; the host agent waits there)."""
    inode = host.exec(["stat", "-c", "%i", LOCK_FILE], check=False).stdout.strip()
    if not inode:
        return False
    for line in host.exec(["cat", "/proc/locks"]).stdout.splitlines():
        parts = line.split()
        if "->" in parts and "FLOCK" in parts and any(p.endswith(f":{inode}") for p in parts):
            return True
    return False


@pytest.mark.timeout(600)
def test_second_apply_waits_or_times_out(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = many_files_spec(tmp_path, host)
    first = start_long_apply(spec)
    waiting: subprocess.Popen[str] | None = None
    try:
        wait_for_lock(host, first)
        os.kill(first.pid, signal.SIGSTOP)
        assert lock_held(host), "the first apply finished before it could be frozen"

        busy = reconcile("apply", spec, "--lock-timeout", "1", check_code=1)
        assert "Error: host web: another reconciler run holds the lock on web (waited 1 s)" in busy.stdout
        assert "Traceback" not in busy.stderr

        waiting = subprocess.Popen([str(RECONCILE), "apply", str(spec), "--lock-timeout", "300"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not waiting_on_host(host):
            assert waiting.poll() is None, f"the waiting apply ended early: {waiting.communicate()}"
            assert time.monotonic() < deadline, "the second apply never queued on the lock"
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGCONT)
        first_out, first_err = first.communicate(timeout=500)
        waiting_out, waiting_err = waiting.communicate(timeout=500)
    finally:
        for proc in (first, waiting):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == 0, first_out + first_err
    assert f"Apply complete! {MANY} applied, 0 failed, 0 skipped." in first_out
    # The waiting run planned after the first had finished: it found nothing to do.
    assert waiting.returncode == 0, waiting_out + waiting_err
    assert waiting_out.strip() == "No changes. The hosts match the spec."
    assert not lock_held(host)
    assert host.exec("ls /srv/lock | wc -l").stdout.strip() == str(MANY)


@pytest.mark.timeout(600)
def test_killed_run_leaves_no_stale_lock(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = many_files_spec(tmp_path, host)
    first = start_long_apply(spec)
    try:
        wait_for_lock(host, first)
    finally:
        first.kill()  # SIGKILL: no cleanup code runs in the reconciler
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 60
    while lock_held(host):
        assert time.monotonic() < deadline, "the lock outlived the killed run"
        time.sleep(0.2)
    # The next run takes the lock at once and finishes the job.
    proc = reconcile("apply", spec, "--lock-timeout", "5", check_code=0)
    assert "failed" not in proc.stdout.replace("0 failed", "")
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
