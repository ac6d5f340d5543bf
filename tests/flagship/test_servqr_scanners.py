"""The field's own scanners on a freshly converged ServQR host (issue 20): systemd-analyze
security passes the backend and frontend at 2.0 ("OK") and scores every unit the spec
writes or starts; gixy over ``nginx -T`` finds nothing of HIGH or MEDIUM severity;
testssl.sh against the published 443 finds no TLS 1.0/1.1 and no weak cipher. The
scores are printed (run with -s to see them)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from testbed.hosts import TestHost
from testbed.images import Images
from testbed.servqr import copy_spec, health_checks, stage_images, summary
from tests.support.harness import host_entry, reconcile
from tests.support.scanners import (
    WEAK_CIPHER_CATEGORIES,
    exposure,
    gixy_findings,
    passes_threshold,
    tls_scan,
)


def wait_healthy(host: TestHost, timeout: float = 180) -> list[str]:
    """The failing health checks of the seed, after waiting up to ``timeout`` for none."""
    deadline = time.monotonic() + timeout
    while True:
        failing = [f"{c.name}: {c.detail}" for c in health_checks(host) if not c.ok]
        if not failing or time.monotonic() > deadline:
            return failing
        time.sleep(3)


UNITS = ("servqr-backend.service", "servqr-frontend.service", "servqr-postgres.service", "nginx.service")


@pytest.mark.timeout(1800)
def test_servqr_passes_the_scanners(fresh_host: TestHost, testbed_images: Images, tmp_path: Path) -> None:
    host = fresh_host
    stage_images(host, testbed_images)
    spec = copy_spec(tmp_path / "repo")
    hosts_file = spec / "hosts.yaml"
    data = yaml.safe_load(hosts_file.read_text())
    data["hosts"]["servqr"] = host_entry(host, vars=data["hosts"]["servqr"]["vars"])
    hosts_file.write_text(yaml.safe_dump(data, sort_keys=False))
    debian_nginx = exposure(host, "nginx.service")

    reconcile("apply", spec, check_code=0, timeout=900)
    failing = wait_healthy(host)
    assert not failing, "\n".join(failing)

    scores = {unit: exposure(host, unit) for unit in UNITS}
    print(f"\nsystemd-analyze security: nginx.service {debian_nginx} before, "
          + ", ".join(f"{unit} {score}" for unit, score in scores.items()))
    for unit in ("servqr-backend.service", "servqr-frontend.service"):
        ok, report = passes_threshold(host, unit, 2.0)
        assert ok, f"{unit} scores above 2.0:\n{report}"
    assert scores["servqr-postgres.service"].score <= 2.0, scores
    assert scores["nginx.service"].score < debian_nginx.score, (debian_nginx, scores)

    findings = gixy_findings(host)
    print("gixy:", [f"{f['severity']} {f['plugin']}" for f in findings] or "no findings")
    serious = [f"{f['severity']} {f['plugin']}: {f['summary']}" for f in findings
               if f["severity"] in ("HIGH", "MEDIUM")]
    assert serious == [], serious

    tls = tls_scan(host.published_port(443))
    shown = ("TLS1", "TLS1_1", "TLS1_2", "TLS1_3", *WEAK_CIPHER_CATEGORIES)
    print("testssl.sh:", {k: tls.get(k) for k in shown})
    assert tls["TLS1"] == "not offered" and tls["TLS1_1"] == "not offered", tls
    weak = {k: tls[k] for k in WEAK_CIPHER_CATEGORIES if tls.get(k) != "not offered"}
    assert weak == {}, weak

    # Still the same healthy ServQR after the scans, and nothing left to converge.
    print(summary(health_checks(host)))
    reconcile("plan", spec, "--detailed-exitcode", check_code=0)
