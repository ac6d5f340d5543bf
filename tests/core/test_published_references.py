"""${published:HOST/KIND:ID/FIELD}: parsed (ids may contain '/'), left in place by
variable substitution, resolved by reveal through the engine's lookup, pending
(known after apply) when the value is not there yet, never Sensitive by itself."""

from __future__ import annotations

from pathlib import Path

from reconciler.engine import Engine, host_dependencies
from reconciler.interpolate import PublishedRef, parse_published, references, reveal, substitute_vars
from reconciler.sensitive import KNOWN_AFTER_APPLY, Sensitive
from reconciler.spec import load_spec


def test_parse_splits_host_address_and_field() -> None:
    assert parse_published("db/backups:nightly/public_key") == PublishedRef("db", "backups:nightly",
                                                                            "public_key")
    ref = parse_published("web/files:/etc/ssh/x.pub/content")
    assert ref is not None and (ref.host, ref.kind, ref.id, ref.field) == ("web", "files", "/etc/ssh/x.pub",
                                                                          "content")
    for bad in ("db/backups:nightly", "db/nightly/public_key", "/backups:x/f", "db/backups:x/"):
        assert parse_published(bad) is None, bad


def test_vars_substitute_around_published_references() -> None:
    text = "restrict ${published:db/backups:n/public_key} ${user}"
    assert substitute_vars(text, {"user": "u"}) == "restrict ${published:db/backups:n/public_key} u"
    assert [r.kind for r in references(text)] == ["published", "var"]


def test_reveal_resolves_or_is_pending() -> None:
    text = "key ${published:db/backups:n/public_key}"
    seen: list[PublishedRef] = []

    def lookup(ref: PublishedRef) -> str | None:
        seen.append(ref)
        return "ssh-ed25519 AAAA" if ref.host == "db" else None

    resolved = reveal(text, lambda _name: None, lookup)
    assert resolved == "key ssh-ed25519 AAAA" and not isinstance(resolved, Sensitive)
    assert seen == [PublishedRef("db", "backups:n", "public_key")]
    assert reveal("${published:other/backups:n/public_key}", lambda _n: None, lookup) is KNOWN_AFTER_APPLY
    assert reveal(text, lambda _n: None, None) is KNOWN_AFTER_APPLY
    mixed = reveal(text + " ${secret:pw}", lambda _n: Sensitive("hunter22"), lookup)
    assert isinstance(mixed, Sensitive)


def test_hosts_that_reference_others_come_after_them(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text("""\
hosts:
  vault: {connect: local}
  db: {connect: local}
  web: {connect: local}
backups:
  - {name: nightly, hosts: [db], schedule: "@daily", source: {paths: [/srv]}, destination: /var/b,
     keep: {count: 2}}
files:
  - {path: /etc/k, hosts: [vault], content: "${published:db/backups:nightly/public_key}"}
""")
    spec, diags = load_spec(str(tmp_path / "spec.yaml"))
    assert spec is not None, [str(d) for d in diags.sorted()]
    assert host_dependencies(spec) == {"vault": {"db"}, "db": set(), "web": set()}
    assert Engine(spec)._dependency_order(["vault", "db", "web"]) == ["db", "vault", "web"]
