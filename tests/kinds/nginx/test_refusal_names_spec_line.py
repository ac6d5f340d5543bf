"""When ``nginx -t`` refuses a site, the error names the spec file, line and field the
offending directive came from. nginx itself names a line of the rendered file
(``/etc/nginx/sites-enabled/app:28``), which the operator never wrote; before the
fix that was all the message said."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import reconcile, write_spec

SITES = """\
nginx_sites:
  - name: app
    server_names: [app.test]
    upstreams:
      front: {servers: ["127.0.0.1:9001"]}
    locations:
      - path: /
        proxy_pass: front
      - path: /files/
        extra:
          - autoindex on
          - proxy_buffering sometimes
  - name: raw
    config: |
      server {
          listen 8081;
          server_name raw.test;
          bogus_directive on;
      }
"""


@pytest.mark.timeout(600)
def test_refusal_points_at_the_spec_line(fresh_host: TestHost, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec", fresh_host)
    (spec / "resources.yaml").write_text(SITES)
    proc = reconcile("apply", str(spec))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert ("nginx -t refused the new version of site 'app' (from resources.yaml:12:13 "
            "(locations[1].extra[1]))") in output
    assert 'invalid value "sometimes" in "proxy_buffering" directive' in output
    assert "nginx -t refused the new version of site 'raw' (from resources.yaml:18:7 (config))" in output
    assert 'unknown directive "bogus_directive"' in output
    assert "Traceback" not in output
