"""Host keys: an unknown host key is refused with a clear message unless the host says
``host_key: accept-new``, which records the key (in the spec's known_hosts file) and
from then on checks it; a key that differs from the recorded one is always refused."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from testbed.hosts import TestHost
from tests.support.harness import host_entry, reconcile, write_spec

FILES = {"files": [{"path": "/srv/hk/x.conf", "content": "x\n"}]}


def spec_with(tmp_path: Path, host: TestHost, known_hosts: Path, **extra: str) -> Path:
    entry = {**host_entry(host), "known_hosts": str(known_hosts), **extra}
    return write_spec(tmp_path / "spec", {"web": entry}, FILES)


def recorded_keys(host: TestHost) -> set[tuple[str, ...]]:
    """The host's real keys, as the test bed read them from the host itself."""
    return {tuple(line.split()[:3]) for line in host.known_hosts_path.read_text().splitlines()}


@pytest.mark.timeout(300)
def test_unknown_key_refused_unless_accept_new(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    known = tmp_path / "known_hosts"
    known.write_text("")
    target = f"ssh://root@127.0.0.1:{host.ssh_port}"

    proc = reconcile("plan", spec_with(tmp_path, host, known), check_code=1)
    assert (f"Error: host web: {target}: unknown host key; add it to known_hosts or set "
            "`host_key: accept-new` on host web") in proc.stdout
    assert known.read_text() == ""

    # accept-new: the key is recorded and the run goes on.
    proc = reconcile("plan", spec_with(tmp_path, host, known, host_key="accept-new"), "--detailed-exitcode",
                     check_code=2)
    assert "+ files:/srv/hk/x.conf" in proc.stdout
    [line] = known.read_text().splitlines()
    name, key_type, key = line.split()
    assert name == f"[127.0.0.1]:{host.ssh_port}"
    assert (name, key_type, key) in recorded_keys(host)  # the host's real key

    # From now on plain checking works against the recorded key.
    reconcile("plan", spec_with(tmp_path, host, known), "--detailed-exitcode", check_code=2)
    assert len(known.read_text().splitlines()) == 1


@pytest.mark.timeout(300)
def test_changed_key_is_refused_even_with_accept_new(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    impostor = paramiko.Ed25519Key.from_private_key_file(str(host.key_path))  # any key but the host's
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{host.ssh_port} {impostor.get_name()} {impostor.get_base64()}\n")
    for extra in ({}, {"host_key": "accept-new"}):
        proc = reconcile("plan", spec_with(tmp_path, host, known, **extra), check_code=1)
        assert (f"Error: host web: ssh://root@127.0.0.1:{host.ssh_port}: host key CHANGED (possible "
                "man-in-the-middle)") in proc.stdout
    assert len(known.read_text().splitlines()) == 1  # nothing was added


@pytest.mark.timeout(300)
def test_ssh_config_can_only_make_checking_stricter(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    known = tmp_path / "known_hosts"
    known.write_text("")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    # StrictHostKeyChecking yes overrides the spec's accept-new: nothing is recorded.
    (home / ".ssh" / "config").write_text("Host 127.0.0.1\n    StrictHostKeyChecking yes\n")
    proc = reconcile("plan", spec_with(tmp_path, host, known, host_key="accept-new"), home=home, check_code=1)
    assert (f"ssh://root@127.0.0.1:{host.ssh_port}: unknown host key; add it to known_hosts (~/.ssh/config "
            "sets StrictHostKeyChecking for it, which overrides `host_key: accept-new`)") in proc.stdout
    assert known.read_text() == ""
    # StrictHostKeyChecking no does not loosen the spec's default check.
    (home / ".ssh" / "config").write_text("Host *\n    StrictHostKeyChecking no\n")
    proc = reconcile("plan", spec_with(tmp_path, host, known), home=home, check_code=1)
    assert "unknown host key; add it to known_hosts or set `host_key: accept-new` on host web" in proc.stdout
    assert known.read_text() == ""
