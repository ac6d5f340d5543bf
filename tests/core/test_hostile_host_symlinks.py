"""A hostile managed host: a non-root user (``mallory``) owns the directory of the
managed files and its parent, and plants or swaps symlinks to root-owned files.

* Direct: a parent replaced by a symlink to /etc/cron.d is refused with a clear error
  naming it; a managed directory flipped to a symlink is refused, never followed.
* Race: during 20 applies (files, a secret created again with ``--replace`` and
  restored from its kept copy, a directory), mallory runs a tight loop (``docker exec
  -u mallory``) that swaps the temporary files, the managed files, the managed directory and their parent for
  symlinks to decoy root-owned files. Afterwards no file outside the managed paths has
  changed owner, mode or content (checksum and stat before and after).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import reconcile, write_spec

FINGERPRINT = ("find /etc/decoy /etc/cron.d /etc/shadow /etc/passwd /root -xdev "
               "-exec stat -c '%n %F %u:%g %a %s' {} + | sort; "
               "find /etc/decoy /etc/cron.d /etc/shadow /etc/passwd /root -xdev -type f "
               "-exec sha256sum {} + | sort")

ATTACK = r"""
import os, random, time
base = "/srv/hostile"
conf = base + "/conf"
targets = ["/etc/decoy/shadow", "/etc/decoy/cron", "/etc/shadow"]
end = time.time() + 3600
n = 0
while time.time() < end:
    n += 1
    try:
        for name in os.listdir(conf):
            path = os.path.join(conf, name)
            if name.startswith(".") or random.random() < 0.2:
                try:
                    os.rename(path, path + ".moved")
                    os.symlink(random.choice(targets), path)
                except OSError:
                    pass
        if n % 3 == 0:  # the parent itself, for a moment
            try:
                os.rename(conf, conf + ".real")
                os.symlink("/etc/decoy", conf)
                time.sleep(0.001)
                os.unlink(conf)
                os.rename(conf + ".real", conf)
            except OSError:
                pass
        if n % 5 == 0:  # the managed directory
            try:
                os.rename(conf + "/data", conf + "/data.real")
                os.symlink("/etc/decoy/dir", conf + "/data")
            except OSError:
                pass
        for name in os.listdir(conf):  # keep the directory from filling up
            if name.endswith(".moved"):
                path = os.path.join(conf, name)
                try:
                    os.unlink(path) if not os.path.isdir(path) or os.path.islink(path) else None
                except OSError:
                    pass
    except OSError:
        pass
"""


def prepare(host: TestHost) -> None:
    host.exec("id -u mallory >/dev/null 2>&1 || useradd -m mallory; "
              "install -d -o root -g root -m 0755 /etc/decoy; "
              "printf 'root:$6$decoy:19000::::::\\n' > /etc/decoy/shadow; chmod 0640 /etc/decoy/shadow; "
              "printf '* * * * * root true\\n' > /etc/decoy/cron; chmod 0644 /etc/decoy/cron; "
              "install -d -o root -g root -m 0700 /etc/decoy/dir; "
              "install -d -o mallory -g mallory -m 0755 /srv/hostile /srv/hostile/conf /srv/app")


@pytest.mark.timeout(600)
def test_planted_parent_and_flipped_directory_are_refused(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    prepare(host)
    uid = host.exec(["id", "-u", "mallory"]).stdout.strip()
    host.exec(["su", "mallory", "-s", "/bin/sh", "-c", "ln -s /etc/cron.d /srv/app/conf && "
                                                      "ln -s /etc/decoy/dir /srv/app/data"])
    before = host.exec(FINGERPRINT).stdout
    spec = write_spec(tmp_path / "spec", {"web": host}, {
        "directories": [{"path": "/srv/app/data", "mode": "0777"}],
        "files": [{"path": "/srv/app/conf/evil", "content": "* * * * * root touch /pwned\n"}]})
    proc = reconcile("apply", spec, check_code=1)
    out = proc.stdout
    assert ("✗ web: files:/srv/app/conf/evil (update) FAILED\n"
            f"      parent /srv/app/conf is a symlink owned by uid {uid}; refusing") in out, out
    assert ("✗ web: directories:/srv/app/data (update) FAILED\n"
            "      /srv/app/data exists and is a symlink, not a directory; the reconciler will not "
            "replace it") in out, out
    assert host.exec(FINGERPRINT).stdout == before
    assert host.exec(["test", "-e", "/etc/cron.d/evil"], check=False).returncode != 0


@pytest.mark.timeout(1500)
def test_symlink_races_never_touch_files_outside_the_managed_paths(fresh_host: TestHost,
                                                                    tmp_path: Path) -> None:
    host = fresh_host
    prepare(host)
    before = host.exec(FINGERPRINT).stdout
    spec = write_spec(tmp_path / "spec", {"web": host}, {
        "directories": [{"path": "/srv/hostile/conf/data", "mode": "0755"}],
        "secrets": [{"name": "hostile_token", "path": "/srv/hostile/conf/token"}],
        "files": [{"path": f"/srv/hostile/conf/f{i}.conf", "content": f"line {i}\n" * 50, "mode": "0644"}
                  for i in range(5)]})
    reconcile("apply", spec, check_code=0)  # the kept copy of the secret exists from here on
    attacker = subprocess.Popen(["docker", "exec", "-u", "mallory", host.container_id, "python3", "-c",
                                 ATTACK], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    outcomes = []
    try:
        for run in range(20):
            extra: list[str] = []
            if run % 4 == 1:  # the secret file gone: the next apply restores it from the kept copy
                host.exec("rm -f /srv/hostile/conf/token")
            elif run % 4 == 3:  # a new value: the secret is created again (kept copy, then the file)
                extra = ["--replace", "secrets:hostile_token"]
            proc = reconcile("apply", spec, *extra, check_code=(0, 1))
            outcomes.append(proc.stdout)
            assert "Traceback" not in proc.stdout + proc.stderr
        assert attacker.poll() is None, f"the attack loop stopped early (exit {attacker.returncode})"
    finally:
        attacker.kill()
        attacker.wait()
        host.exec("pkill -u mallory python3", check=False)
    assert host.exec(FINGERPRINT).stdout == before, "a file outside the managed paths changed"
    assert host.exec(["stat", "-c", "%U %a", "/var/lib/reconciler/secrets/hostile_token"]).stdout.split() == \
        ["root", "600"]
    # The attack really raced the applies: they saw its symlinks (and refused or replaced them).
    assert len(outcomes) == 20
    assert any('"symlink"' in out or "refusing" in out or "swapped" in out for out in outcomes)
