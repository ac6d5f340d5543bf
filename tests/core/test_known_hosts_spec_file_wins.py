"""The spec's ``known_hosts`` file decides alone for a host it lists: a stale line for
the same host:port in the operator's ~/.ssh/known_hosts must not make the correct key
look changed (it did: paramiko merged both and refused the right key). For a host the
spec's file does not list, the user's file applies, and a mismatch there is refused
naming the file that holds the recorded key."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from reconciler.transport.sshconfig import Access, Endpoint, resolve_route
from reconciler.transport.sshconnect import known_host_keys
from testbed.hosts import TestHost
from tests.support.harness import host_entry, reconcile, write_spec


def key_line(name: str, key: paramiko.PKey, marker: str = "") -> str:
    return f"{marker}{name} {key.get_name()} {key.get_base64()}\n"


@pytest.fixture
def keys() -> tuple[paramiko.PKey, paramiko.PKey]:
    return paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()


def endpoint_for(home: Path, monkeypatch: pytest.MonkeyPatch, spec_file: Path | None,
                 port: int = 2222) -> Endpoint:
    monkeypatch.setenv("HOME", str(home))
    access = Access(f"ssh://root@10.0.0.5:{port}", known_hosts=str(spec_file) if spec_file else None)
    return resolve_route("web", access, config=paramiko.SSHConfig()).target


def test_spec_file_listing_the_host_decides_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  keys: tuple[paramiko.PKey, paramiko.PKey]) -> None:
    right, stale = keys
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text(key_line("[10.0.0.5]:2222", stale))
    spec_file = tmp_path / "spec_known_hosts"
    spec_file.write_text(key_line("[10.0.0.5]:2222", right))
    known = known_host_keys(endpoint_for(tmp_path, monkeypatch, spec_file))
    assert list(known.keys.values()) == [right]
    assert known.source == str(spec_file)


def test_user_file_applies_when_the_spec_file_does_not_list_the_host(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: tuple[paramiko.PKey, paramiko.PKey]) -> None:
    mine, other = keys
    (tmp_path / ".ssh").mkdir()
    user_file = tmp_path / ".ssh" / "known_hosts"
    # Hashed, as Debian's ssh writes it by default.
    hashed = paramiko.HostKeys.hash_host("[10.0.0.5]:2222")
    user_file.write_text(key_line(hashed, mine))
    spec_file = tmp_path / "spec_known_hosts"
    spec_file.write_text(key_line("[10.0.0.6]:2222", other))
    known = known_host_keys(endpoint_for(tmp_path, monkeypatch, spec_file))
    assert list(known.keys.values()) == [mine]
    assert known.source == str(user_file)


def test_patterns_negation_and_revoked_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            keys: tuple[paramiko.PKey, paramiko.PKey]) -> None:
    good, bad = keys
    spec_file = tmp_path / "kh"
    spec_file.write_text(key_line("10.0.0.*,!10.0.0.9", good) + key_line("10.0.0.5", bad, "@revoked "))
    known = known_host_keys(endpoint_for(tmp_path, monkeypatch, spec_file, port=22))
    assert list(known.keys.values()) == [good]
    assert known.revoked == [bad]
    monkeypatch.setenv("HOME", str(tmp_path))
    excluded = resolve_route("x", Access("ssh://root@10.0.0.9", known_hosts=str(spec_file)),
                             config=paramiko.SSHConfig()).target
    assert known_host_keys(excluded).keys == {}


@pytest.mark.timeout(300)
def test_stale_user_entry_does_not_override_the_spec_file(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    impostor = paramiko.ECDSAKey.generate()
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    user_known = home / ".ssh" / "known_hosts"
    stale = f"[127.0.0.1]:{host.ssh_port} ssh-ed25519 {_other_ed25519(host)}\n" + \
        key_line(f"[127.0.0.1]:{host.ssh_port}", impostor)
    user_known.write_text(stale)
    files = {"files": [{"path": "/srv/kh/x.conf", "content": "x\n"}]}

    # The spec's file lists the host with its real keys: the stale user lines are not consulted.
    spec = write_spec(tmp_path / "spec", {"web": host_entry(host)}, files)
    proc = reconcile("plan", spec, "--detailed-exitcode", home=home, check_code=2)
    assert "+ files:/srv/kh/x.conf" in proc.stdout

    # Without the spec's file, the user's stale line is what is known: refused, and the
    # message says where the recorded key is.
    spec = write_spec(tmp_path / "spec", {"web": host_entry(host, known_hosts=None)}, files)
    proc = reconcile("plan", spec, home=home, check_code=1)
    url = f"ssh://root@127.0.0.1:{host.ssh_port}"
    assert f"{url}: host key CHANGED (possible man-in-the-middle)" in proc.stdout
    assert f"the recorded key is in {user_known}" in proc.stdout
    assert user_known.read_text() == stale  # never rewritten


def _other_ed25519(host: TestHost) -> str:
    """An ed25519 public key that is not the host's (the test bed's login key)."""
    return host.key_path.with_suffix(".pub").read_text().split()[1]
