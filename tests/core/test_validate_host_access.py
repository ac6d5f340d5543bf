"""``reconcile validate`` checks how hosts are reached, offline: the spec's identity
files exist and are files, ``via`` names another SSH host and does not loop, a host
has ``via`` or ``proxy_jump`` but not both, a jump host is written as a URL. Every
mistake is reported at once with the file:line of the host entry's field."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.harness import reconcile

SPEC = """\
hosts:
  web:
    connect: ssh://root@web.example
    identity_file: {missing}
  db:
    connect: ssh://root@db.example
    identity_file: {directory}
    via: web
    proxy_jump: ssh://ops@gw.example
  app:
    connect: ssh://root@app.example
    via: ghost
  loc:
    connect: local
    proxy_jump: ssh://ops@gw.example
  x1:
    connect: ssh://x1.example
    via: x2
  x2:
    connect: ssh://x2.example
    via: x1
  ok:
    connect: ssh://deploy@ok.example
    identity_file: {key}
    via: web
"""


def test_every_access_mistake_at_once(tmp_path: Path) -> None:
    key = tmp_path / "id_test"
    key.write_text("not checked beyond existing and being readable\n")
    (tmp_path / "keys").mkdir()
    spec = tmp_path / "spec"
    spec.mkdir()
    text = SPEC.format(missing=tmp_path / "nope", directory=tmp_path / "keys", key=key)
    (spec / "hosts.yaml").write_text(text)

    proc = reconcile("validate", spec, cwd=tmp_path, check_code=1)
    lines = proc.stderr.splitlines()
    assert lines == [
        f"spec/hosts.yaml:4:5: hosts.web.identity_file: identity file {tmp_path}/nope does not exist "
        "(hint: the private key reconciler logs in with, on this machine)",
        f"spec/hosts.yaml:7:5: hosts.db.identity_file: identity file {tmp_path}/keys is not a file "
        "(hint: the private key reconciler logs in with, on this machine)",
        "spec/hosts.yaml:9:5: hosts.db.proxy_jump: give either via or proxy_jump, not both",
        "spec/hosts.yaml:12:5: hosts.app.via: unknown host 'ghost'; hosts are app, db, loc, ok, web, x1, x2",
        "spec/hosts.yaml:15:5: hosts.loc.proxy_jump: a local host is not reached over SSH, so it has no "
        "jump host",
        "spec/hosts.yaml:18:5: hosts.x1.via: via loops: x1 -> x2 -> x1",
        "spec/hosts.yaml:21:5: hosts.x2.via: via loops: x2 -> x1 -> x2",
        "7 errors in the spec; nothing was changed.",
    ], proc.stderr


def test_a_malformed_jump_host_is_a_field_error(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("hosts:\n  web:\n    connect: ssh://root@web.example\n"
                    "    proxy_jump: [ssh://ops@gw.example, 'not a host!']\n")
    proc = reconcile("validate", spec, cwd=tmp_path, check_code=1)
    assert ("spec.yaml:4:5: hosts.web.proxy_jump: bad jump host 'not a host!'; expected [user@]host[:port] "
            "or ssh://user@host:port") in proc.stderr


def test_a_spec_with_jump_hosts_and_an_existing_key_is_valid(tmp_path: Path) -> None:
    key = tmp_path / "id_test"
    key.write_text("k\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"hosts": {
        "bastion": {"connect": "ssh://ops@203.0.113.5:2222", "identity_file": str(key)},
        "web": {"connect": "ssh://root@10.0.0.5", "via": "bastion"},
        "db": {"connect": "ssh://root@10.0.0.6", "proxy_jump": "ops@203.0.113.5:2222,root@10.0.0.5"},
    }}))
    proc = reconcile("validate", spec, cwd=tmp_path, check_code=0)
    assert "is valid: 3 host(s)" in proc.stdout
