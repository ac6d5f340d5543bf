"""examples/static-site on a real host: the templated page is served over HTTPS by
nginx with gzip and caching headers, plain HTTP redirects, Debian's default site is
gone, retention deletes rotated nginx logs older than 14 days (and only those), and
a second plan is empty."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testbed.demo import point_hosts_at
from testbed.hosts import TestHost
from testbed.util import REPO_ROOT
from tests.support.harness import changes_by_address, exists, plan_json, reconcile, stat

EXAMPLE = REPO_ROOT / "examples" / "static-site"
DOMAIN = "www.example.com"  # the example's hosts.yaml vars, kept by point_hosts_at
OLD_LOG = "/var/log/nginx/access.log.20.gz"
RECENT_LOG = "/var/log/nginx/access.log.2.gz"


def https_headers(host: TestHost, path: str, *args: str) -> str:
    """Response headers (lower-cased) of a GET to the host's own nginx over HTTPS."""
    proc = host.exec(["curl", "-sk", "--max-time", "10", "-o", "/dev/null", "-D", "-", "--resolve",
                      f"{DOMAIN}:443:127.0.0.1", *args, f"https://{DOMAIN}{path}"])
    return proc.stdout.lower()


@pytest.mark.timeout(600)
def test_static_site_example_serves_the_page(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = tmp_path / "static-site"
    shutil.copytree(EXAMPLE, spec)
    point_hosts_at(spec, {"web": host})
    # Rotated logs as logrotate leaves them: one past the 14 days, one recent.
    host.exec(f"echo old | gzip > {OLD_LOG} && touch -d '30 days ago' {OLD_LOG} "
              f"&& echo new | gzip > {RECENT_LOG} && touch -d '2 days ago' {RECENT_LOG}")

    changes = changes_by_address(plan_json(spec))
    retention = changes["retention:nginx-logs"]
    assert [f["path"] for f in retention["fields"] if f["path"].startswith("over_limits.")] == \
        [f"over_limits.{OLD_LOG}"]
    assert changes["files:/etc/nginx/sites-enabled/default"]["action"] == "delete"

    reconcile("apply", spec, check_code=0)

    assert stat(host, "/srv/www/example/index.html") == "regular file root:root 644"
    assert not exists(host, "/etc/nginx/sites-enabled/default")
    assert not exists(host, OLD_LOG) and exists(host, RECENT_LOG)
    assert "/etc/cron.d/" in host.exec("grep -l nginx-logs /etc/cron.d/*").stdout

    # Plain HTTP answers with a redirect to HTTPS.
    redirect = host.exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                          "-H", f"Host: {DOMAIN}", "http://127.0.0.1/about?x=1"]).stdout
    assert redirect == f"301 https://{DOMAIN}/about?x=1"

    # The page, rendered from the template with the host's domain.
    body = host.exec(["curl", "-sk", "--max-time", "10", "--resolve", f"{DOMAIN}:443:127.0.0.1",
                      f"https://{DOMAIN}/"]).stdout
    assert f"<h1>Welcome to {DOMAIN}</h1>" in body and "${domain}" not in body

    # Pages are cached for an hour, assets for 30 days; both are gzipped on request.
    page = https_headers(host, "/", "-H", "Accept-Encoding: gzip")
    assert page.startswith("http/2 200") and "cache-control: max-age=3600" in page, page
    assert "content-encoding: gzip" in page, page
    css = https_headers(host, "/assets/style.css", "-H", "Accept-Encoding: gzip")
    assert "cache-control: max-age=2592000" in css and "content-type: text/css" in css, css
    assert "404" in https_headers(host, "/missing.html").split("\n", 1)[0]

    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
