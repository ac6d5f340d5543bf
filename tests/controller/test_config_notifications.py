"""controller.yaml's notifications, commit_status and status_page: every mistake named
with file:line and the setting's path, all at once; secrets read from files at
start (never from the YAML itself) and never shown in an error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.controller.config import ConfigError, load_config
from reconciler.sensitive import REDACTOR
from tests.controller.support import RECONCILE

BAD = """\
notifications:
  targets:
    - {name: ops, kind: webhook}
    - {name: ops, kind: apprise, url: "json://127.0.0.1/", secret_file: /etc/x}
    - {name: chat, kind: apprise, url: "json://127.0.0.1/", events: [commit-exploded]}
  timeout: 0s
commit_status:
  api: https://deploy:hunter22@git.example.com/api/v1
  repository: not-a-repository
status_page:
  refresh: 0.5s
"""


def test_every_mistake_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(BAD)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), {"repo": "/srv/repo"})
    lines = str(caught.value).splitlines()[1:]
    text = "\n".join(lines)
    assert f"{path}:3:7: notifications.targets[0]: set exactly one of url or url_file" in text
    assert f"{path}:4:7: notifications.targets[1]: secret_file signs webhooks" in text
    assert f"{path}:5:70: notifications.targets[2].events[0]: Input should be 'commit-applied'" in text
    assert f"{path}:6:3: notifications.timeout: must be more than 0s and at most 5m" in text
    assert f"{path}:8:3: commit_status.api: expected an http(s) URL without credentials" in text
    assert f"{path}:9:3: commit_status.repository: expected owner/name, e.g. ops/servqr" in text
    assert f"{path}:11:3: status_page.refresh: must be at least 1s" in text
    assert "hunter22" not in text


def test_target_names_are_unique(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("notifications:\n  targets:\n    - {name: a, kind: webhook, url: 'http://127.0.0.1:1/'}\n"
                    "    - {name: a, kind: webhook, url: 'http://127.0.0.1:2/'}\n")
    with pytest.raises(ConfigError, match="target names must be unique"):
        load_config(str(path), {"repo": "/srv/repo"})


def test_secrets_come_from_files_and_are_redacted(tmp_path: Path) -> None:
    token = tmp_path / "forge-token"
    token.write_text("forge-token-0123456789\n")
    urls = tmp_path / "urls"
    urls.write_text("# comment\nhttps://hooks.example.com/T0/B1/XYZsecretpath\n")
    path = tmp_path / "controller.yaml"
    path.write_text(f"notifications:\n  targets:\n    - {{name: ops, kind: webhook, url_file: {urls}}}\n"
                    f"commit_status: {{api: 'https://git.example.com/api/v1', repository: ops/servqr, "
                    f"token_file: {token}}}\n")
    config = load_config(str(path), {"repo": "/srv/repo"})
    assert config.notifications.targets[0].urls() == ["https://hooks.example.com/T0/B1/XYZsecretpath"]
    assert config.commit_status is not None and config.commit_status.token({}) == "forge-token-0123456789"
    assert REDACTOR.scrub("token forge-token-0123456789") == "token (sensitive)"
    assert "XYZsecretpath" not in REDACTOR.scrub("posting to https://hooks.example.com/T0/B1/XYZsecretpath")
    assert config.commit_status.token({"RECONCILER_FORGE_TOKEN": "from-env"}) == "forge-token-0123456789"


def test_a_missing_secret_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(f"commit_status: {{api: 'https://git.example.com/api/v1', repository: ops/servqr, "
                    f"token_file: {tmp_path / 'nope'}}}\n")
    config = load_config(str(path), {"repo": "/srv/repo"})
    assert config.commit_status is not None
    with pytest.raises(ConfigError, match=r"cannot read commit_status token_file .*nope: No such file"):
        config.commit_status.token({})
    without = load_config(None, {"repo": "/srv/repo", "commit_status": {"api": "https://x.example/api/v1",
                                                                         "repository": "o/r"}})
    assert without.commit_status is not None
    with pytest.raises(ConfigError, match="RECONCILER_FORGE_TOKEN"):
        without.commit_status.token({})
    assert without.commit_status.token({"RECONCILER_FORGE_TOKEN": "t0k3n-from-env"}) == "t0k3n-from-env"


def test_install_service_refuses_a_secret_file_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("notifications:\n  targets:\n"
                    f"    - {{name: ops, kind: webhook, url_file: {tmp_path / 'gone'}}}\n")
    result = subprocess.run([RECONCILE, "install-service", "--print", "--repo", str(tmp_path), "--state-dir",
                             str(tmp_path / "state"), "--config", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode != 0 and not result.stdout
    assert f"cannot read url_file of notification target ops {tmp_path / 'gone'}" in result.stderr
