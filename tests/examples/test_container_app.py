"""examples/container-app on a real host: the busybox httpd container runs healthy with
the page bind-mounted from the host and the generated secret in its environment, is
published on the host's loopback only, nginx proxies the site to it and rate-limits a
burst with 429, the secret never shows in the CLI output, and a second plan is empty."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from testbed.demo import point_hosts_at
from testbed.hosts import TestHost
from testbed.images import Images
from testbed.util import REPO_ROOT
from tests.kinds.firewall.support import answers, eventually_answers
from tests.support.harness import cat, reconcile

EXAMPLE = REPO_ROOT / "examples" / "container-app"
DOMAIN = "app.example.com"  # the example's hosts.yaml vars, kept by point_hosts_at
IMAGE = "busybox:stable"  # what the example names; nothing can be pulled here

# 40 requests from one curl process over one kept-alive connection: fast enough even
# on a loaded machine that nginx's refill (2 a second) cannot keep up with them.
BURST = ["curl", "-s", "--max-time", "60", "-H", f"Host: {DOMAIN}", "-w", "%{http_code}\n",
         *["-o", "/dev/null", "http://127.0.0.1/"] * 40]


@pytest.mark.timeout(900)
def test_container_app_example_serves_through_nginx(fresh_host: TestHost, testbed_images: Images,
                                                     tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.busybox)
    host.exec(["docker", "tag", testbed_images.busybox, IMAGE])
    spec = tmp_path / "container-app"
    shutil.copytree(EXAMPLE, spec)
    point_hosts_at(spec, {"web": host})

    plan = reconcile("plan", spec, check_code=0)
    apply = reconcile("apply", spec, check_code=0)

    [info] = json.loads(host.exec(["docker", "inspect", "--type", "container", "app"]).stdout)
    assert info["State"]["Running"] and info["State"]["Health"]["Status"] == "healthy", info["State"]
    assert info["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}

    # The generated secret reached the container's environment, and no output shows it.
    secret = cat(host, "/srv/app/.app_secret").strip()
    assert len(secret) == 32
    env = host.exec(["docker", "exec", "app", "env"]).stdout.splitlines()
    assert f"APP_SECRET={secret}" in env
    for proc in (plan, apply):
        assert secret not in proc.stdout + proc.stderr

    # nginx proxies the site to the container, which serves the page from the host.
    page = host.exec(["curl", "-s", "--max-time", "10", "-H", f"Host: {DOMAIN}", "http://127.0.0.1/"]).stdout
    assert "Hello from the app container" in page and f"proxies {DOMAIN} to it" in page

    # A burst from one client goes past 120/minute + 20: nginx answers 429.
    codes = host.exec(BURST).stdout.split()
    assert len(codes) == 40 and codes[0] == "200" and "429" in codes and set(codes) <= {"200", "429"}, codes

    # From outside the host, 80 (nginx) answers; 8080 does not: the app listens on loopback only.
    assert eventually_answers(host, 80)
    assert not answers(host, 8080), "the app answered on the host's external address"
    assert host.exec(["curl", "-s", "--max-time", "5", "http://127.0.0.1:8080/"]).stdout == page

    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
