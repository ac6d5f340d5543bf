"""Groups and the variables they carry: a host is in a group when the group selects it
(names, other groups, patterns, ``!`` exclusions) or when it names the group itself;
variables come from top-level vars, then the host's groups, then the host itself,
the later winning (top-level vars are fleet-wide constants: no group or host may
override them, and two groups may not disagree about a host)."""

from __future__ import annotations

from pathlib import Path

from reconciler.spec import LoadedSpec, load_spec

SPEC = """
hosts:
  web-1: {connect: "ssh://root@10.0.0.1", groups: [canary]}
  web-2: {connect: "ssh://root@10.0.0.2"}
  web-10: {connect: "ssh://root@10.0.0.10", vars: {port: 9999}}
  db: {connect: "ssh://root@10.0.0.5"}
groups:
  web: {hosts: ["web-*"], vars: {port: 8080, tier: web}}
  canary: {vars: {release: next}}
  frontline: {hosts: [web, "!canary"]}
  everyone-but-db: {hosts: ["!db"]}
vars:
  app: servqr
files:
  - {path: /etc/port, hosts: [frontline], content: "${app} ${port} ${host}"}
  - {path: /etc/groups, content: "${host:web-1/groups}"}
"""


def load(tmp_path: Path, text: str = SPEC) -> LoadedSpec:
    (tmp_path / "spec.yaml").write_text(text)
    spec, diags = load_spec(str(tmp_path / "spec.yaml"))
    assert spec is not None, "\n".join(str(d) for d in diags)
    return spec


def test_members_from_both_sides_in_natural_order(tmp_path: Path) -> None:
    spec = load(tmp_path)
    assert spec.fleet.members["web"] == ("web-1", "web-2", "web-10")
    assert spec.fleet.members["canary"] == ("web-1",)
    assert spec.fleet.members["frontline"] == ("web-2", "web-10")
    assert spec.fleet.members["everyone-but-db"] == ("web-1", "web-2", "web-10")
    assert spec.fleet.groups_of["web-1"] == ("canary", "everyone-but-db", "web")
    port = spec.by_address["files:/etc/port"]
    assert [h for h in spec.hosts if spec.applies_to(port, h)] == ["web-2", "web-10"]
    groups = spec.resource_for_host(spec.by_address["files:/etc/groups"], "db")
    assert groups.content == "canary,everyone-but-db,web"  # type: ignore[attr-defined]


def test_host_vars_win_over_group_vars_over_nothing(tmp_path: Path) -> None:
    spec = load(tmp_path)
    assert spec.host_vars("web-2")["port"] == "8080"
    assert spec.host_vars("web-10")["port"] == "9999"
    assert spec.host_vars("web-1")["release"] == "next"
    assert "release" not in spec.host_vars("web-2")
    assert "port" not in spec.host_vars("db")
    port = spec.by_address["files:/etc/port"]
    assert spec.resource_for_host(port, "web-10").content == "servqr 9999 web-10"  # type: ignore[attr-defined]


def test_a_group_cannot_override_a_top_level_var(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC.replace("vars: {port: 8080, tier: web}",
                                                     "vars: {port: 8080, app: other}"))
    spec, diags = load_spec(str(tmp_path / "spec.yaml"))
    assert spec is None
    assert any("groups.web.vars.app: variable 'app' is also a top-level var" in str(d) for d in diags.errors)


def test_disagreeing_groups_are_settled_by_the_host(tmp_path: Path) -> None:
    text = SPEC.replace("canary: {vars: {release: next}}", "canary: {vars: {release: next, port: 1}}")
    (tmp_path / "spec.yaml").write_text(text)
    spec, diags = load_spec(str(tmp_path / "spec.yaml"))
    assert spec is None
    assert any("groups canary and web both set variable 'port', differently, and host web-1 is in both"
               in str(d) for d in diags.errors), [str(d) for d in diags.errors]
    settled = load(tmp_path, text.replace('groups: [canary]}', 'groups: [canary], vars: {port: 2}}'))
    assert settled.host_vars("web-1")["port"] == "2"
