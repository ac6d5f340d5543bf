"""Offline validation of offsite targets, drills and ${published:...} references: each
mistake at file:line:col, all at once, before any host is contacted."""

from __future__ import annotations

from pathlib import Path

from tests.kinds.backups.support import reconcile

HOSTS = ("hosts:\n  web: {connect: 'ssh://root@127.0.0.1:1'}\n"
         "  vault: {connect: 'ssh://root@127.0.0.1:2'}\n")
RECIPIENT = "age1" + "q" * 58


def test_offsite_and_verify_mistakes_are_spec_errors(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(HOSTS + f"""\
backups:
  - name: db
    hosts: [web]
    schedule: "0 2 * * *"
    source: {{postgres: {{container: pg, database: app}}}}
    destination: /var/backups/db
    keep: {{days: 7}}
    offsite:
      - {{name: v, host: vault, address: "10.0.0.1; rm", user: Bad User, path: rel/dir,
         host_key: "not a key", encrypt_to: ["{RECIPIENT}", "age1nope"], keep: {{count: 3}}}}
    verify:
      schedule: "0 4 1 * *"
      tables: [Items, "public.audit"]
      min_rows: {{"items; drop": 1}}
      paths: [/srv]
files:
  - path: /etc/ok
    hosts: [vault]
    content: "${{published:web/backups:db/private_key}} ${{published:nohost/backups:db/public_key}}"
  - path: /etc/also
    hosts: [vault]
    content: "${{published:web/backups:other/public_key}}"
""")
    proc = reconcile("validate", tmp_path / "spec.yaml", check_code=1)
    err = proc.stderr
    for fragment in ["backups[0].offsite[0].address: '10.0.0.1; rm' is not a host name",
                     "backups[0].offsite[0].user: 'Bad User' is not a valid user",
                     "backups[0].offsite[0].path: must be an absolute path",
                     "backups[0].offsite[0].host_key: expected an OpenSSH public key line",
                     "backups[0].offsite[0].encrypt_to[1]: 'age1nope' is not an age recipient",
                     "backups[0].verify.tables[0]: 'Items': write table or schema.table in lower case",
                     "backups[0].verify.min_rows.items; drop:",
                     "backups[0].verify.paths: paths check an archive",
                     "backups publishes no field 'private_key' (it publishes: public_key)",
                     "unknown host 'nohost'",
                     "the spec does not define backups:other"]:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    assert f"'{RECIPIENT}'" not in err
    assert "spec.yaml:" in err and "Traceback" not in err


def test_a_published_key_referenced_on_the_wrong_host_is_refused(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(HOSTS + """\
backups:
  - {name: db, hosts: [web], schedule: "@daily", source: {paths: [/srv]}, destination: /var/b,
     keep: {count: 2}}
files:
  - {path: /etc/k, hosts: [vault], content: "${published:vault/backups:db/public_key}"}
""")
    proc = reconcile("validate", tmp_path / "spec.yaml", check_code=1)
    assert "backups:db does not apply to host vault" in proc.stderr, proc.stderr
