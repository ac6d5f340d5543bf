"""Texts in a plan against a real host: a file's content, a systemd unit, an nginx
site, a backup's script and a retention rule's script show as unified diffs read
from the host; a secret inside a file never shows (neither the host's value nor the
spec's); a service's bookkeeping fields are words; and the host's texts are read
with one command only when a text changed (a no-op plan reads nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import Engine, make_transport
from reconciler.spec import load_spec
from reconciler.textdiff import READ_SCRIPT
from testbed.hosts import TestHost
from tests.support.harness import cat, changes_by_address, plan_json, reconcile, write_spec


def resources(version: int) -> dict[str, Any]:
    return {
        "secrets": [{"name": "token", "path": "/srv/td/.token", "length": 24}],
        "files": [
            {"path": "/srv/td/app.conf", "content": f"listen 8080\nworkers {version}\nlog info\n"},
            {"path": "/srv/td/.env", "mode": "0600",
             "content": f"MODE=v{version}\nTOKEN=${{secret:token}}\n"},
        ],
        "services": [{"name": "td", "exec": ["/bin/sleep", "infinity" if version == 1 else "99999"]}],
        "nginx_sites": [{"name": "td", "listen": [8080], "locations": [
            {"path": "/", "return": 200 if version == 1 else 204}]}],
        "backups": [{"name": "td", "schedule": "0 2 * * *", "source": {"paths": ["/srv/td/app.conf"]},
                     "destination": "/var/backups/td", "keep": {"days": 7 * version}}],
        "retention": [{"name": "td", "path": "/var/backups/td", "max_age": f"{14 * version}d"}],
    }


def text_reads_for_plan(spec: Path) -> int:
    """How many times a plan of ``spec`` ran the host-text read (counted on the real
    SSH transport the engine uses)."""
    loaded, diags = load_spec(str(spec))
    assert loaded is not None, [str(d) for d in diags.sorted()]
    transport = make_transport("web", loaded)
    reads = 0
    run_script = transport.run_script

    def counting(script: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += script == READ_SCRIPT
        return run_script(script, *args, **kwargs)

    transport.run_script = counting  # type: ignore[method-assign]
    with Engine(loaded, transports={"web": transport}) as engine:
        engine.plan()
    return reads


@pytest.mark.timeout(600)
def test_texts_show_as_diffs_and_secrets_never(fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, resources(1))
    reconcile("apply", spec, check_code=0)
    assert text_reads_for_plan(spec) == 0  # nothing changed: no text is read
    token = cat(host, "/srv/td/.token").strip()
    assert len(token) == 24

    write_spec(spec, {"web": host}, resources(2))
    plan = plan_json(spec)
    text = reconcile("plan", spec, check_code=0).stdout
    assert token not in json.dumps(plan) and token not in text

    changes = changes_by_address(plan)

    def diff(address: str, field: str) -> list[str]:
        [found] = [f for f in changes[address]["fields"] if f["path"] == field]
        assert found["diff"]["kind"] == "text", found
        return list(found["diff"]["lines"])

    assert diff("files:/srv/td/app.conf", "content") == [
        "@@ -1,3 +1,3 @@", " listen 8080", "-workers 1", "+workers 2", " log info"]
    env = diff("files:/srv/td/.env", "content")
    assert env == ["@@ -1,2 +1,2 @@", "-(1 line of the host's file not shown: the file holds secrets)",
                   "+MODE=v2", " TOKEN=(sensitive)"]
    assert "-ExecStart=/bin/sleep infinity" in diff("services:td", "unit")
    assert "+ExecStart=/bin/sleep 99999" in diff("services:td", "unit")
    site = diff("nginx_sites:td", "content")
    assert any(line.startswith("-") and "return 200" in line for line in site), site
    assert any(line.startswith("+") and "return 204" in line for line in site), site
    assert any(line.startswith("+") and '"days": 14' in line for line in diff("backups:td", "script"))
    assert any(line.startswith("+") and "MAX_AGE=" in line for line in diff("retention:td", "script"))

    # The text plan shows the same, with the secret redacted.
    assert "          -workers 1\n          +workers 2\n" in text
    assert "           TOKEN=(sensitive)\n" in text

    # The host's texts of every changed field are read with one command.
    assert text_reads_for_plan(spec) == 1


@pytest.mark.timeout(600)
def test_bookkeeping_fields_are_words_and_type_changes_are_refused(fresh_host: TestHost,
                                                                  tmp_path: Path) -> None:
    host = fresh_host
    spec = write_spec(tmp_path / "spec", {"web": host}, {
        "services": [{"name": "bk", "exec": ["/bin/sleep", "infinity"]}],
        "files": [{"path": "/srv/bk/data", "content": "x\n"}]})
    reconcile("apply", spec, check_code=0)
    # systemd has not loaded what is on disk; a file became a directory.
    host.exec("echo '# edited' >> /etc/systemd/system/bk.service; rm /srv/bk/data; mkdir /srv/bk/data")
    proc = reconcile("plan", spec, "--output", "json", check_code=1)  # a refused change: exit 1
    changes = changes_by_address(json.loads(proc.stdout))
    fields = {f["path"]: f for f in changes["services:bk"]["fields"]}
    assert fields["need_daemon_reload"]["internal"] is True
    assert fields["need_daemon_reload"]["explanation"].startswith("systemd has not loaded the unit file")
    assert "+# edited" not in fields["unit"]["diff"]["lines"]
    assert "-# edited" in fields["unit"]["diff"]["lines"]
    refused = changes["files:/srv/bk/data"]["refused"]
    assert refused.startswith("/srv/bk/data is a directory on the host and the spec wants a file")

    text = reconcile("plan", spec, check_code=1).stdout
    assert "need_daemon_reload" not in text
    assert "      · systemd has not loaded the unit file on disk yet: a daemon-reload is due" in text
    assert "  # files:/srv/bk/data cannot be applied: /srv/bk/data is a directory on the host" in text
    assert "updated in-place (the spec changed)" not in text

    applied = reconcile("apply", spec, check_code=1)
    assert "  ✗ web: files:/srv/bk/data (update) FAILED" in applied.stdout
    assert "  ✓ web: services:bk (update)" in applied.stdout
    assert host.exec(["test", "-d", "/srv/bk/data"]).returncode == 0  # left alone
