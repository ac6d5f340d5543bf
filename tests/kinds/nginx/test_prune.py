"""Prune: a site the reconciler created and that left the spec is deleted (file, link,
generated key pair); a hand-made site is never touched, nor Debian's default, nor a
site that existed before the reconciler adopted it."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.hosts import TestHost
from tests.kinds.nginx.support import apply_ok, changes, curl, file_digest, plan_json, write_spec


def site(name: str, port: int, **more: object) -> dict[str, object]:
    return {"name": name, "listen": [port], "ipv6": False,
            "locations": [{"path": "/", "return": f"200 '{name}'"}], **more}


def exists(host: TestHost, path: str) -> bool:
    return host.exec(["test", "-e", path], check=False).returncode == 0


@pytest.mark.timeout(600)
def test_prune_removes_owned_sites_only(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    # Made by hand before the reconciler came: one unrelated, one the spec will adopt.
    for name, port, body in (("handmade", 8081, "handmade"), ("adopted", 8084, "old")):
        host.exec(f"printf 'server {{\\n listen {port};\\n return 200 {body};\\n}}\\n' "
                  f"> /etc/nginx/sites-available/{name} "
                  f"&& ln -s /etc/nginx/sites-available/{name} /etc/nginx/sites-enabled/{name}")
    host.exec("systemctl reload nginx")
    untouched = {p: file_digest(host, p) for p in ("/etc/nginx/sites-available/handmade",
                                                   "/etc/nginx/sites-available/default")}
    spec = write_spec(tmp_path / "spec", host, nginx_sites=[
        site("keep", 8082), site("gone", 8083, tls={"self_signed": True, "listen": [8443]}),
        site("adopted", 8084)])
    apply_ok(spec)
    assert curl(host, "http://127.0.0.1:8083/") == (200, "gone")
    assert curl(host, "http://127.0.0.1:8084/") == (200, "adopted")
    assert exists(host, "/etc/nginx/reconciler-tls/gone.key")

    write_spec(tmp_path / "spec", host, nginx_sites=[site("keep", 8082)])
    code, plan = plan_json(spec)
    assert code == 2
    assert [(c["id"], c["action"], c["reason"]) for c in changes(plan)] == [
        ("gone", "delete", "removed-from-spec")]
    assert any("nginx_sites:adopted" in w and "left in place" in w for w in plan["hosts"][0]["warnings"])
    unmanaged = plan["hosts"][0]["unmanaged"]
    assert "nginx site /etc/nginx/sites-enabled/handmade" in unmanaged
    assert "nginx site /etc/nginx/sites-enabled/default (default_server)" in unmanaged

    apply_ok(spec)
    for path in ("/etc/nginx/sites-available/gone", "/etc/nginx/sites-enabled/gone",
                 "/etc/nginx/reconciler-tls/gone.key", "/etc/nginx/reconciler-tls/gone.crt"):
        assert not exists(host, path), path
    assert curl(host, "http://127.0.0.1:8083/")[0] == 0  # nothing listens there any more: reloaded
    assert {p: file_digest(host, p) for p in untouched} == untouched
    for name in ("handmade", "default", "adopted"):
        assert exists(host, f"/etc/nginx/sites-enabled/{name}"), name
    assert curl(host, "http://127.0.0.1:8081/") == (200, "handmade")
    assert curl(host, "http://127.0.0.1:8082/") == (200, "keep")
    assert curl(host, "http://127.0.0.1:8084/") == (200, "adopted")

    code, plan = plan_json(spec)
    assert code == 0 and changes(plan) == []
