"""A host where root cannot log in over SSH, reached as ``deploy`` who may use sudo
without a password (``become: sudo``): the agent is started through ``sudo -n``, so
files, directories, a secret, a service and a container (the Docker API through the
agent) converge as root, and the next plan, as deploy too, is empty."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.become.support import assert_converged, deploy_spec
from tests.support.harness import reconcile


@pytest.mark.timeout(600)
def test_deploy_with_passwordless_sudo_converges(fresh_host: TestHost, testbed_images: Images,
                                                  tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.busybox)  # over SSH as root, so before root login goes away
    host.add_sudo_user("deploy")
    host.disable_root_login()
    as_root = subprocess.run([*host.ssh_argv(), "true"], capture_output=True, text=True, timeout=60)
    assert as_root.returncode != 0, "root can still log in over SSH"

    spec = deploy_spec(tmp_path / "spec", host, testbed_images.busybox)
    reconcile("plan", spec, "--detailed-exitcode", check_code=2)  # plan works as deploy, through sudo
    proc = reconcile("apply", spec, check_code=0)
    assert "Apply complete! 5 applied, 0 failed, 0 skipped." in proc.stdout, proc.stdout
    assert_converged(host)
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
    # Everything ran as root: deploy owns nothing the reconciler made.
    assert host.exec("find /srv/become /var/lib/reconciler -user deploy", check=False).stdout == ""


@pytest.mark.timeout(300)
def test_sudo_that_wants_a_password_is_explained(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    host.add_sudo_user("deploy", password="correct horse battery")
    spec = deploy_spec(tmp_path / "spec", host, "busybox:none")
    proc = reconcile("plan", spec, check_code=1)
    assert ("host web: user deploy cannot become root without a password; set become_password_file or "
            "allow NOPASSWD") in proc.stdout + proc.stderr
