"""The golden site files (tests/kinds/nginx/fixtures/render/*.conf) are real nginx: each one,
and all of them together (their upstream, zone and variable names must not clash),
pass `nginx -t` on a test host."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import openssl_pair

GOLDEN = Path(__file__).parent / "fixtures" / "render"
CERT = re.compile(r"^\s*ssl_certificate\s+(\S+);\s*\n\s*ssl_certificate_key\s+(\S+);", re.MULTILINE)


def nginx_t(host: TestHost) -> tuple[int, str]:
    proc = host.exec(["nginx", "-t"], check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.timeout(600)
def test_golden_files_pass_nginx_t(fresh_host: TestHost) -> None:
    host = fresh_host
    goldens = sorted(GOLDEN.glob("*.conf"))
    assert len(goldens) >= 5
    # One golden is the default_server for its ports, so Debian's default site goes
    # (this throwaway host belongs to the test).
    host.exec(["rm", "/etc/nginx/sites-enabled/default"])
    for golden in goldens:
        for cert, key in CERT.findall(golden.read_text()):
            openssl_pair(host, cert, key, golden.stem)
    for golden in goldens:
        host.exec(["sh", "-c", 'cat > "$1"', "sh", f"/etc/nginx/sites-enabled/{golden.stem}"],
                  input=golden.read_text())
    code, output = nginx_t(host)
    assert code == 0, output
    for golden in goldens:  # each alone as well
        host.exec(["mkdir", "-p", "/root/parked"])
        host.exec("mv /etc/nginx/sites-enabled/* /root/parked/")
        host.exec(["mv", f"/root/parked/{golden.stem}", "/etc/nginx/sites-enabled/"])
        code, output = nginx_t(host)
        assert code == 0, f"{golden.name}: {output}"
        host.exec("mv /root/parked/* /etc/nginx/sites-enabled/")
