"""Chat and e-mail notices go through Apprise: its ``json://`` service posts to a real
receiver on 127.0.0.1 (as a chat service would receive it), with the notice as
title and body and the severity as Apprise's type; URLs can come from a file
(they usually carry a token). Without Apprise installed, the controller refuses
to start and says how to install it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reconciler.controller.config import ConfigError
from reconciler.controller.notifications import Notifications
from reconciler.controller.notifications.chat import AppriseMissing
from tests.controller.notify_support import A, B, config, notifications, rolled_back
from tests.controller.receivers import Receiver


def test_a_notice_reaches_a_chat_service_through_apprise(tmp_path: Path) -> None:
    with Receiver() as receiver:
        urls = tmp_path / "apprise-urls"
        urls.write_text(f"# the team's chat\njson://127.0.0.1:{receiver.port}/chat\n")
        cfg = config(tmp_path, notifications={
            "targets": [{"name": "chat", "kind": "apprise", "url_file": str(urls)}],
            "link": "https://git.example.com/ops/servqr/commit/{revision}"})
        hub = notifications(cfg)
        hub.publish(rolled_back())
        [request] = receiver.wait(1)
        hub.close(10)
    assert request.method == "POST" and request.path == "/chat"
    message = request.json()
    assert message["type"] == "failure"
    assert message["title"] == f"reconciler: commit {B[:12]} rolled back to {A[:12]}: health failed"
    body = message["message"]
    assert f"revision: {B}" in body and "hosts: web" in body and "web: http: curl exited 7" in body
    assert "commit: bump the app (Ops <ops@example.com>)" in body
    assert f"https://git.example.com/ops/servqr/commit/{B}" in body


def test_an_apprise_url_it_does_not_understand_is_refused_at_start(tmp_path: Path) -> None:
    cfg = config(tmp_path, notifications={"targets": [{"name": "chat", "kind": "apprise",
                                                       "url": "nosuchservice://token@x"}]})
    with pytest.raises(ConfigError) as caught:
        Notifications.from_config(cfg, {})
    assert "does not understand URL 1" in str(caught.value) and "token" not in str(caught.value)


def test_without_apprise_the_controller_says_how_to_install_it(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # what `import apprise` meets when it is not installed
    cfg = config(tmp_path, notifications={"targets": [{"name": "chat", "kind": "apprise",
                                                       "url": "json://127.0.0.1:9/"}]})
    with pytest.raises(AppriseMissing) as caught:
        Notifications.from_config(cfg, {})
    assert str(caught.value) == ("notification target chat is an Apprise target, but Apprise is not "
                                 "installed: pip install 'reconciler[notify]'")
