"""Disaster recovery of ServQR, end to end: host A runs ServQR with rows the test
wrote; its backup is encrypted and copied to host B; host A is destroyed; on a
fresh host C, `reconcile backup recover` converges the spec, brings the copy back
from B, decrypts it here, restores it and runs the health checks. The rows are back,
the seed's health checks pass, C's next backup reaches B with C's own key, and the
offsite copy passes a restore drill."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyrage
import pytest

from testbed.dr import (
    expected_rows,
    install_transfer_tools,
    point_hosts,
    read_rows,
    write_dr_spec,
    write_rows,
)
from testbed.hosts import HostFactory, TestHost
from testbed.images import Images
from testbed.servqr import health_checks, stage_images, summary
from tests.support.harness import reconcile


def wait_healthy(host: TestHost, timeout: float = 180) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        failing = [c for c in health_checks(host) if not c.ok]
        if not failing or time.monotonic() > deadline:
            return [f"{c.name}: {c.detail}" for c in failing]
        time.sleep(3)


@pytest.mark.timeout(2400)
def test_servqr_is_recovered_onto_a_fresh_host_from_the_offsite_copy(
        host_factory: HostFactory, testbed_images: Images, tmp_path: Path) -> None:
    host_a, host_b = host_factory(name="servqr-a"), host_factory(name="offsite-b")
    host_c: TestHost | None = None
    try:
        stage_images(host_a, testbed_images)
        install_transfer_tools(host_a, host_b)
        identity = pyrage.x25519.Identity.generate()
        identity_file = tmp_path / "operator.age"
        identity_file.write_text(f"{identity}\n")
        spec = write_dr_spec(tmp_path / "repo")
        point_hosts(spec, host_a, host_b, str(identity.to_public()))

        reconcile("apply", spec, check_code=0, timeout=1200)
        failing = wait_healthy(host_a)
        assert not failing, "\n".join(failing)
        write_rows(host_a)
        run = reconcile("backup", "run", "servqr-backup", spec, check_code=0, timeout=600)
        assert "offsite offsite: copied and verified servqr-backup-" in run.stdout, run.stdout + run.stderr

        # Host A is lost. A fresh machine takes its place in hosts.yaml.
        host_a.remove()
        host_c = host_factory(name="servqr-c")
        stage_images(host_c, testbed_images)
        install_transfer_tools(host_c)
        point_hosts(spec, host_c, host_b, str(identity.to_public()))

        recovered = reconcile("backup", "recover", "servqr-backup", spec, "--host", "servqr",
                              "--identity", identity_file, "--output", "json", check_code=0, timeout=1800)
        result = json.loads(recovered.stdout)
        print(recovered.stderr)
        print(f"RTO achieved {result['recovery_seconds']} s; RPO achieved {result['data_age_seconds']} s")
        assert result["health_ok"] is True
        assert read_rows(host_c) == expected_rows()
        failing = wait_healthy(host_c)
        assert not failing, "\n".join(failing)
        print(summary(health_checks(host_c)))

        # B now trusts C's key (one converge updated its authorized_keys): backups go on.
        again = reconcile("backup", "run", "servqr-backup", spec, check_code=0, timeout=600)
        assert "offsite offsite: copied and verified" in again.stdout, again.stdout + again.stderr
        reconcile("plan", spec, "--detailed-exitcode", check_code=0)

        # The offsite copy itself passes a restore drill (brought back and decrypted here).
        drill = reconcile("backup", "verify", "servqr-backup", spec, "--from-offsite", "offsite",
                          "--identity", identity_file, check_code=0, timeout=900)
        assert "drill ok: servqr-backup-" in drill.stdout, drill.stdout + drill.stderr
    finally:
        for host in (host_a, host_b, host_c):
            if host is not None:
                host.remove()
