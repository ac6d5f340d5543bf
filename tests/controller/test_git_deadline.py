"""Every command that talks to the git remote has an end-to-end deadline: a server on
127.0.0.1 that accepts the connection and never answers (over HTTP and over SSH) holds a
clone or a fetch no longer than ``timeout``; the git processes (git, its
``git-remote-http`` or ``ssh`` helper) are all gone afterwards, the error is transient
and says what happened, and it never holds the URL's credentials."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from reconciler.controller.gitsource import GitSource, GitSourceError, remote_env
from tests.controller.support import HangingServer, LocalRepo, processes_mentioning

TOKEN = "ghp-hung-T0ken-0123456789"
TIMEOUT = 2.0
BOUND = 30.0  # far above the deadline, far below "forever": only a hang can reach it


def failing_fetch(source: GitSource, marker: str) -> tuple[GitSourceError, float]:
    started = time.monotonic()
    with pytest.raises(GitSourceError) as caught:
        source.fetch()
    took = time.monotonic() - started
    assert took < BOUND, f"the fetch took {took:.0f} s"
    assert processes_mentioning(marker) == [], "a git process outlived its deadline"
    return caught.value, took


@pytest.mark.timeout(120)
def test_a_hung_http_server_is_given_up_on_at_the_deadline(tmp_path: Path) -> None:
    with HangingServer() as server:
        url = f"http://x-access-token:{TOKEN}@127.0.0.1:{server.port}/ops/specs.git"
        # Low-speed detection off: only the deadline can end it.
        source = GitSource(url, "main", tmp_path / "repo", tmp_path / "worktrees", timeout=TIMEOUT,
                           environ={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                    "GIT_HTTP_LOW_SPEED_LIMIT": "0"})
        seen: list[list[str]] = []

        def look_while_it_hangs() -> None:
            while server.accepted == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            seen.append(processes_mentioning(str(server.port)))

        deadline = time.monotonic() + BOUND
        watcher = threading.Thread(target=look_while_it_hangs)
        watcher.start()
        error, took = failing_fetch(source, str(server.port))
        watcher.join()
        assert server.accepted >= 1 and took >= TIMEOUT
        assert seen[0], "no git process was seen talking to the server"  # so "all gone" means something
    assert error.transient
    message = str(error)
    assert message.startswith(f"cannot clone http://(sensitive)@127.0.0.1:{server.port}/ops/specs.git")
    assert "no answer within 2 s (git_timeout)" in message and TOKEN not in message
    assert not (tmp_path / "repo").exists() and not (tmp_path / "repo.partial").exists()


@pytest.mark.timeout(120)
def test_a_stalled_http_transfer_is_given_up_by_git_itself(tmp_path: Path) -> None:
    with HangingServer() as server:
        source = GitSource(f"http://127.0.0.1:{server.port}/specs.git", "main", tmp_path / "repo",
                           tmp_path / "worktrees", timeout=60,
                           environ={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                    "GIT_HTTP_LOW_SPEED_TIME": "2"})
        error, took = failing_fetch(source, str(server.port))
    assert error.transient and took < 60
    assert "no answer within" not in str(error)  # git gave up before the deadline, and said why
    assert "Operation too slow" in str(error) or "timed out" in str(error)


@pytest.mark.timeout(120)
def test_a_hung_ssh_server_is_given_up_on_by_ssh_and_by_the_deadline(tmp_path: Path) -> None:
    with HangingServer() as server:
        url = f"ssh://git@127.0.0.1:{server.port}/ops/specs.git"
        base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        # Ours: ssh's ConnectTimeout covers the banner exchange it waits for.
        ours = GitSource(url, "main", tmp_path / "a", tmp_path / "wa", timeout=TIMEOUT, environ=base)
        error, _ = failing_fetch(ours, str(server.port))
        assert error.transient and str(error).startswith(f"cannot clone {url}")
        # An operator's own ssh command, without any timeout: the deadline ends it.
        own = GitSource(url, "main", tmp_path / "b", tmp_path / "wb", timeout=TIMEOUT,
                        environ={**base, "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=no"
                                                            " -o UserKnownHostsFile=/dev/null"})
        error, took = failing_fetch(own, str(server.port))
        assert "no answer within 2 s (git_timeout)" in str(error) and took >= TIMEOUT
        assert server.accepted >= 2


@pytest.mark.timeout(120)
def test_a_fetch_into_an_existing_clone_has_the_deadline_too(tmp_path: Path) -> None:
    upstream = LocalRepo(tmp_path / "upstream")
    upstream.write("specs/hosts.yaml", "hosts: {}\n")
    sha = upstream.commit("first")
    good = GitSource(str(upstream.path), "main", tmp_path / "repo", tmp_path / "worktrees", timeout=TIMEOUT)
    assert good.fetch() == sha
    with HangingServer() as server:
        moved = GitSource(f"http://127.0.0.1:{server.port}/specs.git", "main", tmp_path / "repo",
                          tmp_path / "worktrees", timeout=TIMEOUT,
                          environ={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                   "GIT_HTTP_LOW_SPEED_LIMIT": "0"})
        error, _ = failing_fetch(moved, str(server.port))
    assert str(error).startswith(f"cannot fetch main from http://127.0.0.1:{server.port}/specs.git: "
                                 "no answer within 2 s")
    # The clone is intact: the revision fetched before is still there.
    assert subprocess.run(["git", "-C", str(tmp_path / "repo"), "cat-file", "-t", sha], capture_output=True,
                          text=True, check=True).stdout.strip() == "commit"


def test_the_environment_tells_git_to_give_up_and_never_prompt() -> None:
    env = remote_env({"PATH": "/bin"}, 120)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert (env["GIT_HTTP_LOW_SPEED_LIMIT"], env["GIT_HTTP_LOW_SPEED_TIME"]) == ("1000", "30")
    ssh = env["GIT_SSH_COMMAND"]
    assert "BatchMode=yes" in ssh and "ConnectTimeout=30" in ssh and "ServerAliveInterval=15" in ssh
    # The operator's settings win.
    own = remote_env({"GIT_SSH_COMMAND": "ssh -i /k", "GIT_HTTP_LOW_SPEED_TIME": "5"}, 2)
    assert own["GIT_SSH_COMMAND"] == "ssh -i /k" and own["GIT_HTTP_LOW_SPEED_TIME"] == "5"
    assert "GIT_SSH_COMMAND" not in remote_env({}, 2, ssh_command=False)
