"""A refused login says who was refused where and with which keys: user, host, the key
files tried (as the operator writes them, ``~/...``) and what the agent offered, so
the operator knows what to fix without reaching for ``ssh -v``."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from testbed.hosts import TestHost
from tests.support.harness import host_entry, reconcile, write_spec

FILES = {"files": [{"path": "/srv/auth/x.conf", "content": "x\n"}]}


def unauthorised_key(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    paramiko.ECDSAKey.generate().write_private_key_file(str(path))
    return path


@pytest.mark.timeout(300)
def test_refused_login_names_user_host_and_keys(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    home = tmp_path / "home"
    target = f"ssh://root@127.0.0.1:{host.ssh_port}"

    # The spec's identity file, which the host does not authorise.
    unauthorised_key(home / "keys" / "deploy_key")
    spec = write_spec(tmp_path / "spec", {"web": host_entry(host, identity_file="~/keys/deploy_key")}, FILES)
    proc = reconcile("plan", spec, home=home, check_code=1)
    assert (f"Error: host web: {target}: authentication failed for user root; tried keys: "
            "~/keys/deploy_key (agent: none)") in proc.stdout

    # No identity file anywhere: the default ~/.ssh/id_* keys that exist are named.
    unauthorised_key(home / ".ssh" / "id_ecdsa")
    spec = write_spec(tmp_path / "spec", {"web": host_entry(host, identity_file=None)}, FILES)
    proc = reconcile("plan", spec, home=home, check_code=1)
    assert (f"Error: host web: {target}: authentication failed for user root; tried keys: "
            "~/.ssh/id_ecdsa (agent: none)") in proc.stdout

    # Keys from ~/.ssh/config (IdentitiesOnly: the agent is not asked); a missing one is said so.
    (home / ".ssh" / "config").write_text(
        "Host 127.0.0.1\n    User nobody\n    IdentityFile ~/keys/deploy_key\n"
        "    IdentityFile ~/keys/gone\n    IdentitiesOnly yes\n")
    proc = reconcile("plan", spec, home=home, check_code=1)
    # `connect` says root: the spec's user wins over the config's User.
    assert (f"Error: host web: {target}: authentication failed for user root; tried keys: "
            "~/keys/deploy_key, ~/keys/gone (missing) (agent: not used, IdentitiesOnly)") in proc.stdout

    # The same config, with the session's real key added: the login works.
    (home / ".ssh" / "config").write_text(
        f"Host 127.0.0.1\n    IdentityFile ~/keys/deploy_key\n    IdentityFile {host.key_path}\n")
    proc = reconcile("plan", spec, "--detailed-exitcode", home=home, check_code=2)
    assert "+ files:/srv/auth/x.conf" in proc.stdout
