"""Secrets in a container's env reach the container but never a plan (text or JSON)
or an apply report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testbed.hosts import TestHost
from testbed.images import Images
from tests.kinds.containers.support import SLEEP_COMMAND, applied, inspect, reconcile, write_spec

SECRETS = [{"name": "api_token", "path": "/opt/app/.api_token", "length": 40}]


def app(image: str, token_env: str) -> dict[str, Any]:
    return {"name": "app", "image": image, "pull": "never", "command": SLEEP_COMMAND,
            "env": {"API_TOKEN": token_env, "MODE": "prod"}}


@pytest.mark.timeout(600)
def test_secret_env_values_never_appear_in_output(fresh_host: TestHost, testbed_images: Images,
                                                  tmp_path: Path) -> None:
    host = fresh_host
    host.load_image(testbed_images.busybox)
    image = testbed_images.busybox
    spec = write_spec(tmp_path / "spec", host, secrets=SECRETS,
                      containers=[app(image, "${secret:api_token}")])
    outputs = [applied(spec)]
    token = host.exec("cat /opt/app/.api_token").stdout.strip()
    assert len(token) == 40
    info = inspect(host, "app")
    assert info is not None and f"API_TOKEN={token}" in info["Config"]["Env"], "the container gets the value"

    # Removed by hand: the plan to create it again lists its env, secret included.
    host.exec(["docker", "rm", "-f", "app"])
    create_text = reconcile("plan", spec)
    create_json = reconcile("plan", "--output", "json", spec)
    assert '"API_TOKEN": "(sensitive)"' in create_text.stdout
    outputs += [create_text, create_json, applied(spec)]

    # The secret-derived value changes: old and new are both hidden.
    write_spec(tmp_path / "spec", host, secrets=SECRETS,
               containers=[app(image, "Bearer ${secret:api_token}")])
    replace_text = reconcile("plan", spec)
    assert "env.API_TOKEN = (sensitive) -> (sensitive)" in replace_text.stdout
    outputs += [replace_text, reconcile("plan", "--output", "json", spec), applied(spec, "--output", "json")]
    info = inspect(host, "app")
    assert info is not None and f"API_TOKEN=Bearer {token}" in info["Config"]["Env"]

    for result in outputs:
        assert token not in result.stdout and token not in result.stderr, result.args
