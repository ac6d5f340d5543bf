"""Every request has a deadline, on the host and on the controller, and a lost
controller leaves nothing behind.

* ``exec`` past its timeout: the command's whole process group is killed (a
  grandchild too) and the caller gets TransportError saying so.
* An agent that does not answer (frozen with SIGSTOP): the controller gives up after
  the request's deadline plus the grace, with TransportError, instead of waiting
  forever; other requests go on once it is thawed.
* EOF on the agent's stdin (connection dropped, controller gone): it kills the
  processes it started and lets go of its locks.
* Paths travel in the message: 10,000 paths of 100+ characters in one request.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from reconciler.errors import TransportError
from reconciler.transport import LocalTransport


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is as good as gone
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_exec_past_its_deadline_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    t = LocalTransport("local")
    try:
        started = time.monotonic()
        killed = r"`sh` timed out after 1 s \(its process group was killed\)"
        with pytest.raises(TransportError, match=killed):
            t.run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], timeout=1)
        assert time.monotonic() - started < 10
        assert wait_gone(int(pidfile.read_text())), "the grandchild outlived the deadline"
        assert t.run(["echo", "still here"]).out == "still here\n"
    finally:
        t.close()


def test_controller_gives_up_on_an_agent_that_does_not_answer() -> None:
    t = LocalTransport("local")
    agent = t._session()
    assert agent is not None
    agent.grace = 1.0
    pid = int(agent.hello["pid"])
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"did not answer `true` within 3 s; gave up on it"):
            t.run(["true"], timeout=2)
        assert time.monotonic() - started < 10
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        assert t.run(["echo", "ok"]).out == "ok\n"
    finally:
        t.close()


def test_eof_kills_children_and_releases_locks(tmp_path: Path) -> None:
    lock_file = tmp_path / "host.lock"
    pidfile = tmp_path / "child.pid"
    t = LocalTransport("local")
    agent = t._session()
    assert agent is not None
    reply = t.send_request({"op": "lock", "path": str(lock_file), "wait": 5}, 10)
    assert reply["ok"] and "lock" in reply["result"], reply
    fd = os.open(lock_file, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        def long_command() -> None:
            with pytest.raises(TransportError):
                t.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 300"], timeout=600)

        runner = threading.Thread(target=long_command, daemon=True)
        runner.start()
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child = int(pidfile.read_text())
        agent.channel.close()  # what a dropped connection looks like from the host: EOF
        assert wait_gone(child), "the agent's child outlived the controller"
        deadline = time.monotonic() + 10
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the lock outlived the agent"
                time.sleep(0.05)
        runner.join(10)
    finally:
        os.close(fd)
        t.close()


def test_ten_thousand_long_paths_in_one_request(tmp_path: Path) -> None:
    base = tmp_path / ("d" * 60)
    base.mkdir()
    paths = [str(base / f"{'f' * 60}{i:05d}") for i in range(10_000)]
    assert all(len(p) > 100 for p in paths)
    for p in paths[:50]:
        Path(p).write_text("x")
    t = LocalTransport("local")
    try:
        stats = t.stat(paths, sha256=True)
        contents = t.read_files(paths)
        assert t.commands_run == 3  # the agent's start, then one request each
    finally:
        t.close()
    assert len(stats) == len(contents) == 10_000
    assert sum(1 for s in stats.values() if s is not None) == 50
    assert contents[paths[0]] == b"x" and contents[paths[-1]] is None
