"""The ``nginx`` kind, in effect without being declared: a TLS site converges with the
host-wide security settings and the nginx.service sandbox; gixy over ``nginx -T`` finds
nothing of HIGH or MEDIUM severity, testssl.sh finds no TLS 1.0/1.1 and no weak cipher,
and systemd-analyze scores nginx.service far lower than Debian's unit. A sandbox nginx
cannot run under is rolled back; the last site leaving the spec puts the package's
nginx.conf back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import (
    apply_ok,
    changes,
    curl_https,
    echo_of,
    plan_json,
    reconcile,
    start_echo_upstream,
    write_spec,
)
from tests.support.scanners import WEAK_CIPHER_CATEGORIES, exposure, gixy_findings, tls_scan

SITE = {"name": "app", "server_names": ["app.test"], "upstreams": {"front": {"servers": ["127.0.0.1:9001"]}},
        "locations": [{"path": "/", "proxy_pass": "front"}],
        "tls": {"self_signed": True, "redirect_http": True, "hsts": True}}
# Debian's welcome site (its try_files is a gixy finding of its own) is not ours to judge.
NO_DEBIAN_DEFAULT = [{"path": "/etc/nginx/sites-enabled/default", "state": "absent"}]
DROPIN = "/etc/systemd/system/nginx.service.d/50-reconciler-hardening.conf"
SNIPPET = "/etc/nginx/conf.d/reconciler-security.conf"


def serves(host: TestHost) -> bool:
    status, body = curl_https(host, "app.test", "/")
    return status == 200 and echo_of(body)["upstream"] == "front"


def package_md5(host: TestHost) -> str:
    out = host.exec("dpkg-query -W -f='${Conffiles}\\n' nginx-common | awk '$1 == \"/etc/nginx/nginx.conf\"'")
    return out.stdout.split()[1]


@pytest.mark.timeout(1200)
def test_sites_get_secure_tls_and_a_sandboxed_nginx(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    start_echo_upstream(host, 9001, "front")
    before = exposure(host, "nginx.service")
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[SITE], files=NO_DEBIAN_DEFAULT)

    # The plan shows the implied nginx settings and the score nginx.service will have.
    _, plan = plan_json(spec)
    (settings,) = [c for c in changes(plan) if c["kind"] == "nginx"]
    assert (settings["id"], settings["action"]) == ("host", "create")
    planned = {f["path"]: f["new"] for f in settings["fields"]}["exposure"]
    match = re.fullmatch(r"(\d\.\d) ([A-Z]+) \(now (\d\.\d) ([A-Z]+)\)", planned)
    assert match, planned
    assert f"{match.group(3)} {match.group(4)}" == str(before)

    apply_ok(spec)
    assert serves(host)
    after = exposure(host, "nginx.service")
    assert str(after) == f"{match.group(1)} {match.group(2)}", (after, planned)
    assert after.score < 3.0 < before.score, (before, after)
    assert host.exec(["systemctl", "is-active", "nginx"]).stdout.strip() == "active"
    # The sandbox is in force for the running master, not just on disk.
    sandbox = host.exec(["systemctl", "show", "-p", "ProtectSystem", "--value", "nginx"]).stdout.strip()
    assert sandbox == "strict"

    findings = gixy_findings(host)
    serious = [f"{f['severity']} {f['plugin']}: {f['summary']}" for f in findings
               if f["severity"] in ("HIGH", "MEDIUM")]
    assert serious == [], serious
    tls = tls_scan(host.published_port(443))
    assert tls["TLS1"] == "not offered" and tls["TLS1_1"] == "not offered", tls
    assert tls["TLS1_2"].startswith("offered") and tls["TLS1_3"].startswith("offered"), tls
    weak = {k: tls[k] for k in WEAK_CIPHER_CATEGORIES if tls.get(k) != "not offered"}
    assert weak == {}, weak
    code, plan = plan_json(spec)
    assert code == 0 and changes(plan) == []

    # A sandbox nginx cannot run under (no CAP_DAC_OVERRIDE: its log files belong to
    # www-data) is rolled back: the previous drop-in is back and nginx serves as before.
    good_dropin = host.exec(["sha256sum", DROPIN]).stdout.split()[0]
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[SITE], files=NO_DEBIAN_DEFAULT,
                      nginx={"hardening": {"capability_bounding_set": [
                          "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN"]}})
    proc = reconcile("apply", str(spec))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "nginx:host (update) FAILED" in proc.stdout
    assert "nginx.service did not keep running with the sandbox drop-in" in proc.stdout
    assert "Permission denied" in proc.stdout  # nginx's own words, from the journal
    assert host.exec(["sha256sum", DROPIN]).stdout.split()[0] == good_dropin
    assert host.exec(["systemctl", "is-active", "nginx"]).stdout.strip() == "active"
    assert serves(host)

    # The last site leaves the spec: the package's nginx.conf is back, the rest is gone.
    spec = write_spec(tmp_path / "spec", host)
    _, plan = plan_json(spec)
    assert {(c["address"], c["action"]) for c in changes(plan)} == {
        ("nginx_sites:app", "delete"), ("nginx:host", "delete")}
    apply_ok(spec)
    md5 = host.exec(["md5sum", "/etc/nginx/nginx.conf"]).stdout.split()[0]
    assert md5 == package_md5(host)
    for gone in (DROPIN, SNIPPET, "/etc/nginx/nginx.conf.reconciler-orig"):
        assert host.exec(["test", "-e", gone], check=False).returncode == 1, gone
    assert host.exec(["systemctl", "is-active", "nginx"]).stdout.strip() == "active"
    assert exposure(host, "nginx.service") == before
