"""The ``nginx`` kind's files are pure renderings: the defaults and a tuned spec render
to exactly the golden files under fixtures/globals/ (checked on a test host by
test_global_security.py, where nginx -t, gixy and a restarted nginx accept them); the
implied default applies only with nginx_sites, on their hosts.

Regenerate after an intended change with ``RECONCILER_UPDATE_GOLDEN=1`` and read the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from reconciler_providers.nginx.globals import (
    NginxGlobal,
    effective_hardening,
    render_dropin,
    render_main,
    render_snippet,
    validate_global,
)

from reconciler.spec import load_spec

FIXTURES = Path(__file__).parent / "fixtures" / "globals"
TUNED = {"server_tokens": True, "worker_connections": 4096,
         "main_config": "keep",
         "hardening": {"protect_home": "read-only", "read_write_paths": ["/var/cache/app"],
                       "memory_deny_write_execute": False}}


def golden(name: str, text: str) -> None:
    path = FIXTURES / name
    if os.environ.get("RECONCILER_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize(("case", "spec"), [("default", {}), ("tuned", TUNED)])
def test_files_render_to_golden(case: str, spec: dict[str, object]) -> None:
    g = NginxGlobal.model_validate(spec)
    assert validate_global(g) == []
    golden(f"{case}-security.conf", render_snippet(g))
    golden(f"{case}-nginx.conf", render_main(g))
    golden(f"{case}-hardening.conf", render_dropin(g) or "")


def test_defaults_are_what_the_scanners_ask_for() -> None:
    g = NginxGlobal()
    snippet = render_snippet(g)
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in snippet and "server_tokens off;" in snippet
    assert "ssl_prefer_server_ciphers off;" in snippet
    assert "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:" in snippet
    assert "worker_rlimit_nofile 4096;" in render_main(g)  # >= 2 x worker_connections (gixy)
    # keep: the distribution's nginx.conf sets these at the http level already.
    kept = render_snippet(NginxGlobal(main_config="keep"))
    assert "ssl_protocols" not in kept and "ssl_prefer_server_ciphers" not in kept


def test_hardening_overrides_merge_over_nginx_base() -> None:
    h = effective_hardening(NginxGlobal.model_validate(TUNED))
    assert h is not None
    assert h.read_write_paths == ["/var/log/nginx", "/var/lib/nginx", "/run", "/var/cache/app"]
    assert h.protect_home == "read-only" and h.memory_deny_write_execute is False
    assert "CAP_NET_BIND_SERVICE" in (h.capability_bounding_set or [])
    assert effective_hardening(NginxGlobal.model_validate({"hardening": "none"})) is None
    assert render_dropin(NginxGlobal.model_validate({"hardening": "none"})) is None


def test_settings_that_cannot_work_are_warnings() -> None:
    issues = validate_global(NginxGlobal(worker_connections=1024, worker_rlimit_nofile=1500))
    assert [(i.path, i.warning) for i in issues] == [(("worker_rlimit_nofile",), True)]
    kept = NginxGlobal.model_validate({"main_config": "keep", "tls_protocols": ["TLSv1.3"]})
    issues = validate_global(kept)
    assert [(i.path, i.warning) for i in issues] == [(("tls_protocols",), True)]


def _entries(tmp_path: Path, resources: dict[str, object]) -> dict[str, list[str] | None]:
    spec = {"hosts": {"a": {"connect": "local"}, "b": {"connect": "local"}}, **resources}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    loaded, diags = load_spec(str(tmp_path))
    assert loaded is not None, [str(d) for d in diags.errors]
    return {e.address: e.resource.hosts for e in loaded.entries}


def test_implied_only_with_sites_and_on_their_hosts(tmp_path: Path) -> None:
    site = {"name": "app", "locations": [{"path": "/", "return": 204}]}
    assert "nginx:host" not in _entries(tmp_path, {"files": [{"path": "/tmp/x", "content": "x"}]})
    assert _entries(tmp_path, {"nginx_sites": [site]})["nginx:host"] is None
    assert _entries(tmp_path, {"nginx_sites": [{**site, "hosts": ["b"]}]})["nginx:host"] == ["b"]
    declared = _entries(tmp_path, {"nginx_sites": [site], "nginx": {"server_tokens": True, "hosts": ["a"]}})
    assert declared["nginx:host"] == ["a"]
