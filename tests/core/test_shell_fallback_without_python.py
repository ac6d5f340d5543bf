"""A host without python3 is managed with plain shell commands: chosen automatically,
logged once per run, and the same spec converges (directories, files, a secret, the
inventory, the host lock) and plans empty afterwards. python3 is hidden at runtime
(renamed), not removed from the image."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.support.harness import cat, reconcile, stat, write_spec

FALLBACK = "no python3 (>= 3.9) on the host; using plain shell commands"


@pytest.mark.timeout(600)
def test_plain_shell_path_converges(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    host.exec("mv /usr/bin/python3 /usr/bin/python3.hidden")
    spec = write_spec(tmp_path / "spec", {"web": host}, {
        "directories": [{"path": "/srv/plain", "mode": "0750"}],
        "secrets": [{"name": "plain_token", "path": "/srv/plain/token"}],
        "files": [{"path": f"/srv/plain/f{i}.conf", "content": f"{i}\n"} for i in range(20)]
        + [{"path": "/srv/plain/uses-secret", "content": "t=${secret:plain_token}\n", "mode": "0600"}]})
    try:
        proc = reconcile("apply", spec, "--log-format", "json", check_code=0)
        assert proc.stderr.count(FALLBACK) == 1, proc.stderr
        assert "Apply complete! 23 applied, 0 failed, 0 skipped." in proc.stdout
        assert stat(host, "/srv/plain") == "directory root:root 750"
        token = cat(host, "/srv/plain/token")
        assert len(token) == 32 and cat(host, "/srv/plain/uses-secret") == f"t={token}\n"
        assert cat(host, "/var/lib/reconciler/secrets/plain_token") == token
        assert cat(host, "/srv/plain/f7.conf") == "7\n"
        reconcile("plan", spec, "--detailed-exitcode", check_code=0)
        host.exec("rm /srv/plain/token")
        reconcile("apply", spec, check_code=0)
        assert cat(host, "/srv/plain/token") == token, "restored from the kept copy, not regenerated"
    finally:
        host.exec("mv /usr/bin/python3.hidden /usr/bin/python3")
