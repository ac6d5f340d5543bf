"""``POST /hooks/git``: a request whose X-Hub-Signature-256 is not the HMAC-SHA256 of the
body under the shared secret is refused with 401 and fetches nothing; a correctly
signed one (GitHub's convention) makes the controller fetch and apply at once."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from testbed.hosts import TestHost
from tests.controller.support import (
    LOCAL_HOSTS_YAML,
    HostRepo,
    files_yaml,
    host_status,
    install_controller,
    read_file,
    wait_applied,
)

APP = "/srv/app/app.conf"
SECRET = "correct horse battery staple"
SECRET_FILE = "/etc/reconciler/webhook-secret"
BODY = json.dumps({"ref": "refs/heads/main", "after": "0" * 40})


def post_hook(host: TestHost, body: str, signature: str | None) -> int:
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
            "-H", "Content-Type: application/json", "-H", "X-GitHub-Event: push", "--data-binary", "@-"]
    if signature is not None:
        argv += ["-H", f"X-Hub-Signature-256: {signature}"]
    return int(host.exec([*argv, "http://127.0.0.1:9109/hooks/git"], input=body).stdout)


@pytest.mark.timeout(600)
def test_webhook_needs_a_valid_hmac_and_triggers_a_fetch(shared_host: TestHost) -> None:
    host = shared_host
    host.exec(["sh", "-c", 'mkdir -p /etc/reconciler && umask 077 && printf "%s\\n" "$1" > "$2"', "sh",
               SECRET, SECRET_FILE])
    repo = HostRepo(host).init()
    repo.write("specs/hosts.yaml", LOCAL_HOSTS_YAML)
    repo.write("specs/app.yaml", files_yaml({APP: "one\n"}))
    first = repo.commit("one")
    # No repository watch and an hour between fetches: only the webhook can bring news.
    install_controller(host, "--webhook-secret-file", SECRET_FILE, "--no-watch-local", "--interval", "1h")
    wait_applied(host, first)

    repo.write("specs/app.yaml", files_yaml({APP: "two\n"}))
    second = repo.commit("two")
    time.sleep(3)
    assert host_status(host)["head"]["revision"] == first  # not fetched yet

    good = "sha256=" + hmac.new(SECRET.encode(), BODY.encode(), hashlib.sha256).hexdigest()
    wrong_key = "sha256=" + hmac.new(b"guess", BODY.encode(), hashlib.sha256).hexdigest()
    assert post_hook(host, BODY, None) == 401
    assert post_hook(host, BODY, wrong_key) == 401
    assert post_hook(host, BODY + " ", good) == 401  # the body was changed after signing
    time.sleep(3)
    status = host_status(host)
    assert status["head"]["revision"] == first and status["last_applied"]["revision"] == first
    assert read_file(host, APP) == "one\n"

    assert post_hook(host, BODY, good) == 202
    status = wait_applied(host, second, timeout=60)
    assert read_file(host, APP) == "two\n"
    history = [e for e in json.loads(host.exec(["reconcile", "history", "--output", "json"]).stdout)
               if e["revision"] == second]
    assert [(e["result"], e["trigger"]) for e in history] == [("applied", "webhook")]
