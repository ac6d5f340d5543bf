"""``become: sudo`` with ``become_password_file``: sudo's password is written to its
stdin after its own prompt, so it is never on a command line (``ps`` on the host is
watched during the whole apply), never in the output or the debug log, and never in
an error. A wrong password is a clear error; a password file others can read is
refused before anything connects."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.become.support import assert_converged, deploy_spec
from tests.support.harness import RECONCILE, reconcile

PASSWORD = "Tr0ub4dor&3-sudo-only"


def password_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return path


def watch_processes(host: TestHost, stop: threading.Event, seen: list[str]) -> None:
    while not stop.is_set():
        seen.append(host.exec(["ps", "-eo", "args"], check=False).stdout)
        time.sleep(0.05)


@pytest.mark.timeout(900)
def test_password_reaches_sudo_and_nothing_else(fresh_host: TestHost, testbed_images: Images,
                                                tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.busybox)
    host.add_sudo_user("deploy", password=PASSWORD)
    host.disable_root_login()
    secret_file = password_file(tmp_path / "sudo-password", PASSWORD)
    spec = deploy_spec(tmp_path / "spec", host, testbed_images.busybox, become_password_file=str(secret_file))

    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=watch_processes, args=(host, stop, seen), daemon=True)
    watcher.start()
    try:
        proc = subprocess.run([str(RECONCILE), "apply", str(spec), "-vv", "--log-format", "json"],
                              capture_output=True, text=True, timeout=600, check=False)
    finally:
        stop.set()
        watcher.join(30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_converged(host)
    assert len(seen) > 3 and any("sudo" in snapshot for snapshot in seen), "ps saw the run"
    assert not any(PASSWORD in snapshot for snapshot in seen), "the password was on a command line"
    assert PASSWORD not in proc.stdout + proc.stderr
    assert PASSWORD not in host.exec("journalctl --no-pager -n 2000", check=False).stdout
    plan = reconcile("plan", spec, "--detailed-exitcode", "-vv", check_code=0)
    assert PASSWORD not in plan.stdout + plan.stderr

    wrong = password_file(tmp_path / "wrong-password", "not-" + PASSWORD)
    bad_spec = deploy_spec(tmp_path / "bad", host, testbed_images.busybox, become_password_file=str(wrong))
    refused = reconcile("plan", bad_spec, "-vv", check_code=1)
    assert ("host web: sudo did not accept the password in become_password_file for user deploy"
            in refused.stdout + refused.stderr)
    assert "not-" + PASSWORD not in refused.stdout + refused.stderr


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    readable = password_file(tmp_path / "sudo-password", PASSWORD, mode=0o640)
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "hosts.yaml").write_text(
        "hosts:\n  web:\n    connect: ssh://deploy@127.0.0.1:22\n    become: sudo\n"
        f"    become_password_file: {readable}\n")
    proc = reconcile("validate", tmp_path / "spec", check_code=1)
    assert "hosts.web.become_password_file" in proc.stdout + proc.stderr
    assert "readable or writable by group or others (mode 0640); chmod 600 it" in proc.stdout + proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
