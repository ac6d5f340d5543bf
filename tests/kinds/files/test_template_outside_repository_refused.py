"""A hostile commit cannot copy a file of the machine that runs reconcile onto a host.
Before the fix ``template: ../../../<controller key>`` (or a template or spec file
linked to it, or to ``/proc/self/environ``) was read and written to the host,
world-readable. Now the spec is refused before any host is contacted, the message
names the path as the spec wrote it, and the content appears nowhere."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.cli import reconcile, write_spec

TARGET = "/srv/stolen/copy"


def git_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


@pytest.mark.timeout(600)
@pytest.mark.parametrize("how", ["relative_path", "linked_template", "linked_spec_file"])
def test_the_controllers_ssh_key_is_not_copied_to_the_host(how: str, shared_host: TestHost,
                                                           tmp_path: Path) -> None:
    host = shared_host
    repo = git_repo(tmp_path / "repo")
    spec = write_spec(repo / "specs", host)  # hosts.yaml: the test host, over SSH with this key
    key = Path(host.key_path).resolve()     # the "controller's" private key, outside the repository
    secret_line = key.read_text().splitlines()[1]
    resources = spec / "resources.yaml"
    if how == "relative_path":
        resources.write_text(f"files:\n  - path: {TARGET}\n    mode: '0644'\n"
                             f"    template: {os.path.relpath(key, spec)}\n")
    elif how == "linked_template":
        (spec / "motd.tpl").symlink_to(key)
        resources.write_text(f"files:\n  - path: {TARGET}\n    mode: '0644'\n    template: motd.tpl\n")
    else:
        resources.unlink()
        (spec / "resources.yaml").symlink_to(key)

    proc = reconcile("apply", str(spec))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "outside the spec's repository" in output
    assert secret_line not in output and "PRIVATE KEY" not in output
    assert host.exec(["test", "-e", TARGET], check=False).returncode != 0
