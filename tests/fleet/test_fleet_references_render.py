"""Fleet references rendered, as golden files: the load balancer's nginx upstream lists
every backend with its address and port, the database's firewall admits each backend
(one rule per backend), a backend's env file (a template) names the database host
and lists its peers (a line per backend); each host sees the same fleet. Adding a
fourth backend changes the load balancer's and the database's resources and nothing
else of theirs. Set RECONCILER_UPDATE_GOLDEN=1 to rewrite the goldens after a change
you mean."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import yaml
from reconciler_providers.files.provider import FilesProvider
from reconciler_providers.firewall.model import normalize_all
from reconciler_providers.firewall.nft import desired_ruleset, render
from reconciler_providers.nginx.render import render_site

from reconciler.provider import HostContext
from reconciler.spec import LoadedSpec, load_spec
from reconciler.transport import LocalTransport

FIXTURE = Path(__file__).parent / "fixtures"
EXPECTED = FIXTURE / "expected"


def load(path: Path) -> LoadedSpec:
    spec, diags = load_spec(str(path))
    assert spec is not None, "\n".join(str(d) for d in diags)
    return spec


def resource(spec: LoadedSpec, address: str, host: str) -> object:
    return spec.resource_for_host(spec.by_address[address], host)


def check_golden(name: str, text: str) -> None:
    path = EXPECTED / name
    if os.environ.get("RECONCILER_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the golden"


def rendered(spec: LoadedSpec) -> dict[str, str]:
    site = resource(spec, "nginx_sites:servqr", "lb")
    firewall = resource(spec, "firewall:host", "db")
    env = resource(spec, "files:/opt/servqr/.env", "backend-2")
    ctx = HostContext("backend-2", LocalTransport("backend-2"), spec.host_vars("backend-2"), fleet=spec.fleet)
    return {"lb-servqr.conf": render_site(site),  # type: ignore[arg-type]
            "db-firewall.nft": render(desired_ruleset(firewall.policy,  # type: ignore[attr-defined]
                                                      normalize_all(firewall))),  # type: ignore[arg-type]
            "backend-2.env": FilesProvider().source_text(env, ctx)}  # type: ignore[arg-type]


def test_each_host_renders_the_fleet_as_the_goldens_say() -> None:
    spec = load(FIXTURE / "spec")
    for name, text in rendered(spec).items():
        check_golden(name, text)
    per_host = {h: {e.address: spec.resource_for_host(e, h).model_dump(mode="json", exclude_defaults=True)
                    for e in spec.entries_for(h)} for h in spec.fleet.ordered(spec.hosts)}
    check_golden("resources.json", json.dumps(per_host, indent=2, sort_keys=True) + "\n")


def test_upstream_and_firewall_follow_the_backends_in_natural_order() -> None:
    spec = load(FIXTURE / "spec")
    site = resource(spec, "nginx_sites:servqr", "lb")
    servers = site.upstreams["backend"].servers  # type: ignore[attr-defined]
    assert servers == ["10.10.0.11:8081", "10.10.0.12:9000", "10.10.0.20:8081"]
    firewall = resource(spec, "firewall:host", "db")
    sources = [r.source for r in firewall.rules]  # type: ignore[attr-defined]
    assert sources == [None, "10.10.0.11", "10.10.0.12", "10.10.0.20"]


def test_a_fourth_backend_changes_the_load_balancer_and_the_database(tmp_path: Path) -> None:
    before = load(FIXTURE / "spec")
    copy = tmp_path / "spec"
    shutil.copytree(FIXTURE / "spec", copy)
    hosts = yaml.safe_load((copy / "hosts.yaml").read_text())
    hosts["hosts"]["backend-3"] = {"connect": "ssh://root@10.10.0.13"}
    (copy / "hosts.yaml").write_text(yaml.safe_dump(hosts))
    after = load(copy)
    assert resource(after, "nginx_sites:servqr", "lb").upstreams["backend"].servers == [  # type: ignore[attr-defined]
        "10.10.0.11:8081", "10.10.0.12:9000", "10.10.0.13:8081", "10.10.0.20:8081"]
    assert len(resource(after, "firewall:host", "db").rules) == 5  # type: ignore[attr-defined]
    # The new backend gets the backends' resources; the others' stay as they were
    # except the peers line of their env file.
    assert [e.address for e in after.entries_for("backend-3")] == ["files:/opt/servqr/.env"]
    unchanged = "files:/opt/servqr/db-ready"
    assert resource(before, unchanged, "db").model_dump() == resource(after, unchanged, "db").model_dump()  # type: ignore[attr-defined]
