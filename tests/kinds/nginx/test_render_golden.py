"""Rendering an nginx site is pure: each spec under tests/kinds/nginx/fixtures/render/NAME.yaml
renders to exactly NAME.conf. The same files are loaded by a real nginx in
test_nginx_golden_configs_pass_nginx_t.py, so a golden file cannot be wrong nginx.

After an intended change in rendering, regenerate with
``RECONCILER_UPDATE_GOLDEN=1 .venv/bin/pytest tests/kinds/nginx/test_render_golden.py`` and
read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from reconciler_providers.nginx.model import NginxSite, validate_site
from reconciler_providers.nginx.render import HEADER_PREFIX, ident, render_site

FIXTURES = Path(__file__).parent / "fixtures" / "render"
CASES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))


def load_site(case: str) -> NginxSite:
    return NginxSite.model_validate(yaml.safe_load((FIXTURES / f"{case}.yaml").read_text()))


@pytest.mark.parametrize("case", CASES)
def test_spec_renders_to_golden_file(case: str) -> None:
    site = load_site(case)
    assert validate_site(site) == []
    text = render_site(site)
    golden = FIXTURES / f"{case}.conf"
    if os.environ.get("RECONCILER_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


def test_fixtures_exist() -> None:
    assert len(CASES) >= 5, CASES
    assert all((FIXTURES / f"{case}.conf").is_file() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_rendered_file_starts_with_the_ownership_header(case: str) -> None:
    text = render_site(load_site(case))
    assert text.startswith(f"{HEADER_PREFIX} (nginx_sites:{load_site(case).name}).")


def test_upstreams_and_zones_are_prefixed_per_site() -> None:
    """Two sites may both have an upstream called backend: nginx names are global."""
    one = NginxSite.model_validate({
        "name": "one", "upstreams": {"backend": {"servers": ["127.0.0.1:1"]}},
        "locations": [{"path": "/", "proxy_pass": "backend",
                       "rate_limit": {"requests_per_minute": 10}}]})
    two = one.model_copy(update={"name": "two"})
    text_one, text_two = render_site(one), render_site(two)
    assert "upstream backend.one {" in text_one and "proxy_pass http://backend.one;" in text_one
    assert "upstream backend.two {" in text_two
    assert "zone=one_root:10m" in text_one and "zone=two_root:10m" in text_two


def test_ident_keeps_distinct_names_distinct() -> None:
    assert ident("shop") == "shop"
    assert ident("a-b") != ident("a_b")
    assert ident("a-b").startswith("a_b_")


def test_extra_directives_get_their_semicolon() -> None:
    site = NginxSite.model_validate({"name": "s", "extra": [
        "add_header X-A a", "add_header X-B b;", "proxy_set_header X-Token ${secret:token}",
        "location /x {\n    return 204;\n}"]})
    text = render_site(site)
    assert "    add_header X-A a;\n" in text and "    add_header X-B b;\n" in text
    assert "    proxy_set_header X-Token ${secret:token};\n" in text
    assert "    location /x {\n        return 204;\n    }\n" in text


def test_values_that_could_break_out_are_quoted() -> None:
    site = NginxSite.model_validate({"name": "q", "server_names": ["~^app\\d{2};\\.example\\.com$"],
                                     "locations": [{"path": '~ ^/a"b{1}', "return": 204}]})
    assert validate_site(site) == []
    text = render_site(site)
    assert 'server_name "~^app\\\\d{2};\\\\.example\\\\.com$";' in text
    assert 'location ~ "^/a\\"b{1}" {' in text
