"""Offsite copies between two real hosts: the target's side is declared in the same
spec and receives the source's generated key through ${published:...}; each backup
is encrypted with age on the source, copied with rsync, verified on the target,
pruned by the target's own keep; the key can do nothing but write into its
directory; a failing copy exits 3, is recorded, and leaves the local backup alone."""

from __future__ import annotations

import base64
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyrage
import pytest

from testbed.hosts import HostFactory
from tests.kinds.backups.offsite_support import (
    TARGET_DIR,
    TARGET_HOME,
    TARGET_USER,
    container_ip,
    install_transfer_tools,
    offsite_target,
    target_side,
    write_two_host_spec,
)
from tests.kinds.backups.support import files_in, reconcile

DEST = "/var/backups/data"
KEY = "/var/lib/reconciler/backups/data-offsite.key"


@pytest.mark.timeout(1200)
def test_offsite_copy_is_encrypted_verified_pruned_and_confined(host_factory: HostFactory,
                                                                tmp_path: Path) -> None:
    src, vault = host_factory(name="offsite-src"), host_factory(name="offsite-vault")
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(install_transfer_tools, [src, vault]))
        src.exec("mkdir -p /srv/data && echo hello > /srv/data/hello.txt && echo 2 > /srv/data/two.txt")
        identity = pyrage.x25519.Identity.generate()
        [host_key] = [" ".join(line.split()[1:3]) for line in vault.host_key_lines if "ssh-ed25519" in line]
        backup = {"name": "data", "hosts": ["src"], "schedule": "0 3 * * *",
                  "source": {"paths": ["/srv/data"]}, "destination": DEST, "keep": {"count": 5},
                  "offsite": [offsite_target("vault", container_ip(vault), keep={"count": 2},
                                             host_key=host_key, encrypt_to=[str(identity.to_public())])]}
        resources = {"backups": [backup], **target_side("src", "data", "vault")}
        spec = write_two_host_spec(tmp_path / "spec", {"src": src, "vault": vault}, resources)

        # One apply converges both: the target waits for the key the source generates.
        plan = json.loads(reconcile("plan", spec, "--output", "json", "--detailed-exitcode",
                                    check_code=2).stdout)
        [vault_plan] = [h for h in plan["hosts"] if h["host"] == "vault"]
        [keys_change] = [c for c in vault_plan["changes"] if c["address"].endswith("authorized_keys")]
        assert "known after apply" in json.dumps(keys_change), keys_change
        reconcile("apply", spec)
        reconcile("plan", spec, "--detailed-exitcode", check_code=0)
        public = src.exec(["cat", KEY + ".pub"]).stdout.strip()
        authorized = vault.exec(["cat", f"{TARGET_HOME}/.ssh/authorized_keys"]).stdout
        assert authorized == f'restrict,command="/usr/bin/rrsync -wo {TARGET_DIR}" {public}\n'
        assert src.exec(["stat", "-c", "%a %U", KEY]).stdout.strip() == "600 root"

        for _ in range(3):
            run = reconcile("backup", "run", "data", spec)
            assert "offsite vault: copied and verified data-" in run.stdout, run.stdout + run.stderr
        local = [f for f in files_in(src, DEST) if not f.endswith(".sha256")]
        assert len(local) == 3
        copies = files_in(vault, TARGET_DIR)
        assert len(copies) == 4, copies
        assert all(c.endswith((".tar.gz.age", ".tar.gz.age.sha256")) for c in copies), copies
        newest = sorted(c for c in copies if c.endswith(".age"))[-1]
        assert newest == sorted(local)[-1] + ".age"  # keep count 2 on the target: the two newest
        vault.exec(f"cd {TARGET_DIR} && sha256sum --quiet -c {newest}.sha256")

        # Only the operator's identity opens a copy; it holds the backed-up files.
        encrypted = base64.b64decode(vault.exec(["base64", "-w0", f"{TARGET_DIR}/{newest}"]).stdout)
        plain = pyrage.decrypt(encrypted, [identity])
        listing = subprocess.run(["tar", "-tzf", "-"], input=plain, capture_output=True, check=True).stdout
        assert b"srv/data/hello.txt" in listing

        # The source's key can write into its directory and do nothing else.
        ssh = (f"ssh -i {KEY} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
               f"-o LogLevel=ERROR {TARGET_USER}@{container_ip(vault)}")
        shell = src.exec(f"{ssh} cat /etc/passwd", check=False)
        assert shell.returncode != 0 and "root:x:0:0" not in shell.stdout
        ssh_command, account = ssh.rsplit(" ", 1)
        read_back = src.exec(f"rsync -e '{ssh_command}' {account}:{newest} /tmp/stolen", check=False)
        assert read_back.returncode != 0
        assert src.exec("test -e /tmp/stolen", check=False).returncode != 0

        # A target that refuses the key: exit 3, the failure is recorded, the local backup stays.
        vault.exec(f"echo '# emptied by hand' > {TARGET_HOME}/.ssh/authorized_keys")
        failed = reconcile("backup", "run", "data", spec, check_code=1)
        assert "offsite copy to vault" in failed.stderr and "FAILED" in failed.stderr
        assert len([f for f in files_in(src, DEST) if not f.endswith(".sha256")]) == 4
        status = reconcile("backup", "status", "data", spec, check_code=1)
        assert "offsite vault: failed at" in status.stdout, status.stdout
        assert "last backup:  ok at" in status.stdout

        # Converging again restores the key; the copy can be retried by hand.
        reconcile("apply", spec)
        retried = reconcile("backup", "offsite", "data", spec)
        assert "offsite vault: copied and verified" in retried.stdout
        status = reconcile("backup", "status", "data", spec, "--output", "json")
        [host_status] = json.loads(status.stdout)["hosts"]
        assert host_status["last_offsite"]["vault"]["result"] == "ok" and host_status["healthy"]
    finally:
        src.remove()
        vault.remove()

