"""Credentials in the repository URL and a webhook secret given at install time, with
the controller as a real systemd service on a test host.

The spec repository is served over HTTP with basic auth (nginx on the host, git's
"dumb" HTTP protocol), and the controller is installed with
``--repo http://ops:TOKEN@127.0.0.1:8088/gitops.git`` and
``RECONCILER_WEBHOOK_SECRET`` in its environment. Before the fix the token was in the
unit (ExecStart= and Description=, readable by every user), in ``reconcile status``,
the HTTP ``/status`` and git's error messages in the journal, and the webhook secret
never reached the service (the hook answered 404, "no secret is configured").

Now both live in a root-only EnvironmentFile; the token appears nowhere else, also
not when fetching fails (git echoes the URL in its errors)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from testbed.hosts import TestHost
from testbed.wheelhouse import install_reconciler
from tests.controller.support import (
    HOST_STATE,
    LOCAL_HOSTS_YAML,
    UNIT,
    files_yaml,
    host_history,
    host_status,
    journal,
    read_file,
    wait_applied,
    wait_for,
)

TOKEN = "s3cr3t-T0KEN-4711"
# A '$' and a '%' must reach the service literally (systemd expands neither in a
# single-quoted EnvironmentFile value).
HOOK_SECRET = "hook-$HOME-%n-secret"
URL = f"http://ops:{TOKEN}@127.0.0.1:8088/gitops.git"
APP = "/srv/creds/app.conf"
ENV_FILE = "/etc/reconciler/reconciler-controller.env"

SERVE_GIT = r"""
set -e
mkdir -p /srv/work /srv/git
cd /srv/work
git init -q -b main
git config user.email ops@example.com
git config user.name Ops
mkdir -p specs
printf '%s' "$1" > specs/hosts.yaml
printf '%s' "$2" > specs/app.yaml
git add -A
git commit -q -m one
git clone -q --bare /srv/work /srv/git/gitops.git
git -C /srv/git/gitops.git update-server-info
printf 'ops:%s\n' "$(openssl passwd -apr1 "$3")" > /etc/nginx/git.htpasswd
cat > /etc/nginx/conf.d/git.conf <<'EOF'
server {
    listen 127.0.0.1:8088;
    root /srv/git;
    auth_basic "git";
    auth_basic_user_file /etc/nginx/git.htpasswd;
}
EOF
systemctl reload-or-restart nginx
"""

PUSH = r"""
set -e
cd /srv/work
printf '%s' "$1" > specs/app.yaml
git commit -q -am "$2"
git push -q /srv/git/gitops.git main
git -C /srv/git/gitops.git update-server-info
git rev-parse HEAD
"""


def post_hook(host: TestHost, secret: str | None) -> str:
    body = json.dumps({"ref": "refs/heads/main"})
    headers = ["-H", "X-GitHub-Event: push", "-H", "Content-Type: application/json"]
    if secret is not None:
        digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
        headers += ["-H", f"X-Hub-Signature-256: sha256={digest}"]
    return host.exec(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *headers, "--data-binary", body,
                      "http://127.0.0.1:9109/hooks/git"]).stdout


@pytest.mark.timeout(900)
def test_repo_token_and_webhook_secret_stay_out_of_unit_status_and_logs(fresh_host: TestHost) -> None:
    host = fresh_host
    install_reconciler(host)
    host.exec(["sh", "-c", SERVE_GIT, "sh", LOCAL_HOSTS_YAML, files_yaml({APP: "one\n"}), TOKEN])
    first = host.exec(["git", "-C", "/srv/work", "rev-parse", "HEAD"]).stdout.strip()

    host.exec(["env", f"RECONCILER_WEBHOOK_SECRET={HOOK_SECRET}", "reconcile", "install-service",
               "--repo", URL, "--path", "specs", "--interval", "1h"])
    wait_applied(host, first)
    assert read_file(host, APP) == "one\n"

    # The secrets are in a root-only file the unit names, and nowhere in the unit.
    assert host.exec(["stat", "-c", "%a %U", ENV_FILE]).stdout.strip() == "600 root"
    unit = host.exec(["cat", f"/etc/systemd/system/{UNIT}"]).stdout
    assert f"EnvironmentFile={ENV_FILE}" in unit
    shown = host.exec(["systemctl", "show", UNIT, "-p", "ExecStart,Description,Environment"]).stdout
    pid = host.exec(["systemctl", "show", UNIT, "-p", "MainPID", "--value"]).stdout.strip()
    cmdline = host.exec(["cat", f"/proc/{pid}/cmdline"]).stdout.replace("\0", " ")
    for where, text in (("unit", unit), ("systemctl show", shown), ("command line", cmdline)):
        assert TOKEN not in text and HOOK_SECRET not in text, f"{where}: {text}"
    assert "http://(sensitive)@127.0.0.1:8088/gitops.git" in unit  # Description= still says which repo

    # The webhook secret given at install time reached the service, literally.
    assert post_hook(host, None) == "401"
    assert post_hook(host, "wrong") == "401"
    second = host.exec(["sh", "-c", PUSH, "sh", files_yaml({APP: "two\n"}), "two"]).stdout.strip()
    assert post_hook(host, HOOK_SECRET) == "202"
    wait_applied(host, second, timeout=120)
    assert read_file(host, APP) == "two\n"

    # A fetch that fails (the server refuses the token now): git's error, which echoes
    # the URL, reaches the journal and the status without the token.
    host.exec(["sh", "-c", 'printf "ops:%s\\n" "$(openssl passwd -apr1 other)" > /etc/nginx/git.htpasswd '
                           "&& systemctl reload nginx"])
    host.exec(["sh", "-c", PUSH, "sh", files_yaml({APP: "three\n"}), "three"])
    assert post_hook(host, HOOK_SECRET) == "202"
    wait_for("the failed fetch in the journal", lambda: "fetch failed" in journal(host), timeout=60,
             explain=lambda: journal(host))

    status_text = host.exec(["reconcile", "status", "--state-dir", HOST_STATE]).stdout
    status_json = json.dumps(host_status(host))
    http_status = host.exec(["curl", "-s", "http://127.0.0.1:9109/status"]).stdout
    history = json.dumps(host_history(host))
    logs = host.exec(["journalctl", "-u", UNIT, "--no-pager", "-o", "cat"]).stdout
    for where, text in (("status", status_text), ("status json", status_json), ("/status", http_status),
                        ("history", history), ("journal", logs)):
        assert TOKEN not in text, f"{where} shows the token:\n{text[-3000:]}"
        assert HOOK_SECRET not in text, f"{where} shows the webhook secret"
    assert "127.0.0.1:8088/gitops.git" in status_text and "(sensitive)" in status_text
    assert "(sensitive)@127.0.0.1:8088" in logs  # the failed fetch, named without its token
