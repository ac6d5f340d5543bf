"""The validator: a site that nginx -t refuses never goes live. The previous file and
link stay, nginx is not reloaded, the old site keeps serving, and apply exits 1
quoting nginx's own message. A configuration broken by someone else is named as such."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import (
    apply_ok,
    changes,
    curl,
    echo_of,
    file_digest,
    nginx_pids,
    plan_json,
    reconcile,
    start_echo_upstream,
    write_spec,
)

SITE = {"name": "app", "server_names": ["app.test"], "upstreams": {"front": {"servers": ["127.0.0.1:9001"]}},
        "locations": [{"path": "/", "proxy_pass": "front"}]}


def serves_front(host: TestHost) -> bool:
    status, body = curl(host, "http://127.0.0.1/", "-H", "Host: app.test")
    return status == 200 and echo_of(body)["upstream"] == "front"


@pytest.mark.timeout(600)
def test_broken_extra_is_refused_and_old_site_keeps_serving(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_echo_upstream(host, 9001, "front")
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[SITE])
    apply_ok(spec)
    assert serves_front(host)
    good_digest = file_digest(host, "/etc/nginx/sites-available/app")
    pids = nginx_pids(host)

    write_spec(tmp_path / "spec", host, nginx_sites=[{**SITE, "extra": ["proxy_buffering sometimes"]}])
    proc = reconcile("apply", str(spec))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "nginx -t refused the new version of site 'app'" in output
    assert 'invalid value "sometimes" in "proxy_buffering" directive' in output
    assert "Traceback" not in output

    assert file_digest(host, "/etc/nginx/sites-available/app") == good_digest
    link = host.exec(["readlink", "/etc/nginx/sites-enabled/app"]).stdout.strip()
    assert link == "/etc/nginx/sites-available/app"
    assert host.exec("ls -A /etc/nginx/sites-available /etc/nginx/sites-enabled | grep -c reconciler",
                     check=False).stdout.strip() == "0", "a temporary or backup file was left behind"
    assert nginx_pids(host) == pids, "nginx was reloaded for a refused site"
    assert serves_front(host)
    host.exec(["nginx", "-t"])  # what is on disk is still valid

    # The refused change is still pending, and only it.
    code, plan = plan_json(spec)
    assert code == 2
    assert [(c["id"], [f["path"] for f in c["fields"]]) for c in changes(plan)] == [("app", ["content"])]


@pytest.mark.timeout(600)
def test_configuration_broken_by_someone_else_is_named(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_echo_upstream(host, 9001, "front")
    # Someone else's site with a typo: the live nginx keeps running its old configuration.
    host.exec("printf 'server {\\n listen 8081;\\n retrun 200;\\n}\\n' > /etc/nginx/sites-enabled/typo")
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[SITE])
    proc = reconcile("apply", str(spec))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "invalid even without the new version of site 'app'" in output
    assert 'unknown directive "retrun"' in output
    assert host.exec(["test", "-e", "/etc/nginx/sites-available/app"], check=False).returncode == 1
    assert host.exec(["test", "-e", "/etc/nginx/sites-enabled/app"], check=False).returncode == 1
    assert host.exec(["cat", "/etc/nginx/sites-enabled/typo"]).stdout.count("retrun") == 1
