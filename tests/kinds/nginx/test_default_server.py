"""default_server: Debian's own default site is reported, never touched; a spec that
also claims default_server for port 80 is refused by nginx -t with a hint saying
which site is in the way; once the operator removes Debian's default, the site
becomes the catch-all for unknown host names."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import apply_ok, changes, curl, file_digest, plan_json, reconcile, write_spec


@pytest.mark.timeout(600)
def test_default_server_conflict_is_explained(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    debian_default = file_digest(host, "/etc/nginx/sites-available/default")
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[{
        "name": "catchall", "default_server": True, "server_names": ["catchall.test"],
        "locations": [{"path": "/", "return": "200 'catchall'"}]}])
    code, plan = plan_json(spec)
    assert "nginx site /etc/nginx/sites-enabled/default (default_server)" in plan["hosts"][0]["unmanaged"]

    proc = reconcile("apply", str(spec))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "a duplicate default server for 0.0.0.0:80" in output
    assert "hint: another enabled site (often Debian's sites-enabled/default)" in output
    assert file_digest(host, "/etc/nginx/sites-available/default") == debian_default
    assert host.exec(["test", "-L", "/etc/nginx/sites-enabled/default"], check=False).returncode == 0

    host.exec(["rm", "/etc/nginx/sites-enabled/default"])  # the operator's decision, not ours
    apply_ok(spec)
    assert curl(host, "http://127.0.0.1/", "-H", "Host: unknown.example") == (200, "catchall")
    code, plan = plan_json(spec)
    assert code == 0 and changes(plan) == [] and plan["hosts"][0]["unmanaged"] == []
