"""The controller SIGKILLed in the middle of an apply: systemd restarts it, the next
pass applies the same commit again and converges, and no managed file is ever
half-written (the transport writes atomically: a file is old, new or absent)."""

from __future__ import annotations

import json

import pytest

from testbed.hosts import TestHost
from tests.controller.support import (
    LOCAL_HOSTS_YAML,
    HostRepo,
    files_yaml,
    host_history,
    host_status,
    install_controller,
    journal,
    main_pid,
    wait_applied,
    wait_for,
)

COUNT = 400
BODY = "x" * 3000

# Runs on the host: every file under /srv/many is complete (name -> expected body), and
# prints what it found, so the test sees partial files and leftover temporaries.
CHECK_FILES = r"""
import json, os, sys
count, body = int(sys.argv[1]), sys.argv[2]
found, bad = [], []
for name in sorted(os.listdir("/srv/many")):
    found.append(name)
    if not name.startswith("f"):
        continue
    with open(os.path.join("/srv/many", name)) as fh:
        if fh.read() != name[1:4] + "-" + body:
            bad.append(name)
print(json.dumps({"found": found, "bad": bad}))
"""

# Runs on the host: wait until the apply has written its first file, then SIGKILL the
# controller's main process at once, and count what was written by then.
KILL_MID_APPLY = r"""
for i in $(seq 1 6000); do [ -e /srv/many/f000.txt ] && break; sleep 0.005; done
pid=$(systemctl show -p MainPID --value reconciler-controller.service)
kill -9 "$pid"
echo "$pid $(ls /srv/many | grep -c '^f')"
"""


def check_files(host: TestHost) -> dict[str, list[str]]:
    out = host.exec(["python3", "-c", CHECK_FILES, str(COUNT), BODY]).stdout
    data: dict[str, list[str]] = json.loads(out)
    return data


@pytest.mark.timeout(900)
def test_sigkill_mid_apply_converges_on_restart(shared_host: TestHost) -> None:
    host = shared_host
    repo = HostRepo(host).init()
    repo.write("specs/hosts.yaml", LOCAL_HOSTS_YAML)
    repo.write("specs/app.yaml", files_yaml({"/srv/app/app.conf": "one\n"}))
    first = repo.commit("app")
    install_controller(host)
    wait_applied(host, first)

    many_files = {f"/srv/many/f{i:03d}.txt": f"{i:03d}-{BODY}" for i in range(COUNT)}
    repo.write("specs/many.yaml", files_yaml(many_files))
    many = repo.commit("400 files")
    pid, written = map(int, host.exec(["bash", "-c", KILL_MID_APPLY], timeout=120).stdout.split())
    assert 0 < written < COUNT, f"the kill did not land mid-apply ({written} of {COUNT} files written)"

    # Right after the kill: whatever exists is complete.
    after_kill = check_files(host)
    assert after_kill["bad"] == [], f"half-written files after SIGKILL: {after_kill['bad']}"

    # systemd restarts it; the in-flight run is resumed and converges.
    wait_for("systemd to restart the controller", lambda: main_pid(host) not in (0, pid), timeout=60,
             explain=lambda: journal(host))
    status = wait_applied(host, many, timeout=300)
    assert status["in_flight"] is None and status["last_error"] is None
    final = check_files(host)
    assert final["bad"] == []
    # Every file, and nothing else: no temporary file of an interrupted write is left over.
    assert final["found"] == [f"f{i:03d}.txt" for i in range(COUNT)]
    entries = [e for e in host_history(host) if e["revision"] == many]
    assert [e["result"] for e in entries] == ["applied"]
    # The resumed run's plan created only what the killed run had not.
    assert entries[0]["summary"]["add"] == COUNT - len([n for n in after_kill["found"] if n.startswith("f")])
    assert host_status(host)["resources"]["local"][f"files:/srv/many/f{COUNT - 1:03d}.txt"] == "ok"
