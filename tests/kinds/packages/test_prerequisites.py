"""A kind's prerequisites (nginx_sites needs packages:nginx): on a bare host a spec that
does not install nginx fails to plan, naming the resource, the package and the host,
and nothing is applied; with packages:nginx in the spec the site is applied after it,
and a resource that depends on the package (Debian's default site, which the nginx
package enables and the spec says must be absent) is checked again right after it is
installed, so one apply converges and the next plan is empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.packages.support import apply_ok, changes, plan_json, reconcile, write_spec

SITE = {"name": "hello", "server_names": ["hello.test"], "default_server": True,
        "locations": [{"path": "/", "return": '200 "hello from nginx"'}]}
DEFAULT_SITE = {"path": "/etc/nginx/sites-enabled/default", "state": "absent",
                "depends_on": ["packages:nginx"]}
FETCH = ("python3 -c \"import urllib.request as u; "
         "print(u.urlopen('http://127.0.0.1/', timeout=10).read().decode())\"")


@pytest.mark.timeout(900)
def test_missing_prerequisite_is_a_plan_error_and_a_declared_one_goes_first(bare_host: TestHost,
                                                                             tmp_path: Path) -> None:
    host = bare_host
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[SITE])
    proc = reconcile("plan", str(spec))
    assert proc.returncode == 1
    assert ("Error: host web: nginx_sites:hello needs packages:nginx, which is not installed on host web and "
            "not in the spec") in proc.stdout, proc.stdout
    proc = reconcile("apply", str(spec))
    assert proc.returncode == 1
    assert host.exec(["test", "-e", "/var/lib/reconciler/inventory.json"], check=False).returncode != 0

    write_spec(tmp_path / "spec", host, packages=[{"name": "nginx"}], nginx_sites=[SITE],
               files=[DEFAULT_SITE])
    code, plan = plan_json(spec)
    assert code == 2
    order = [(c["address"], c["action"], c["reason"]) for c in changes(plan)]
    assert order == [("packages:nginx", "create", "absent"),
                     ("files:/etc/nginx/sites-enabled/default", "update", "triggered"),
                     ("nginx:host", "create", "absent"),  # nginx's host-wide settings, implied by sites
                     ("nginx_sites:hello", "create", "absent")], order
    [recheck] = [c for c in changes(plan) if c["address"].startswith("files:")]
    assert recheck["note"] == "checked again after packages:nginx is created, which may change it"
    proc = apply_ok(spec)
    assert "✓ web: files:/etc/nginx/sites-enabled/default (delete)" in proc.stdout, proc.stdout
    assert host.exec(["test", "-e", "/etc/nginx/sites-enabled/default"], check=False).returncode != 0
    assert host.exec(FETCH).stdout.strip() == "hello from nginx"
    assert plan_json(spec)[0] == 0
