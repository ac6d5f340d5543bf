"""sd_notify over a real unix datagram socket, as systemd provides it in $NOTIFY_SOCKET
(a path, or an abstract address starting with @), and the watchdog period."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from reconciler.controller.notify import Notifier


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "120000000",
                             "WATCHDOG_PID": str(os.getpid())})
        assert notifier.enabled and notifier.watchdog_interval == 60.0
        assert notifier.ready("applied abc")
        assert sock.recv(4096) == b"READY=1\nSTATUS=applied abc"
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert notifier.status("line one\nline two")
        assert sock.recv(4096) == b"STATUS=line one line two"


def test_abstract_socket() -> None:
    name = f"reconciler-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).stopping()
        assert sock.recv(4096) == b"STOPPING=1"


def test_without_systemd_nothing_is_sent(tmp_path: Path) -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert not notifier.ready()
    # A watchdog meant for another process (WATCHDOG_PID) is not ours to feed.
    assert Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    # A vanished socket is not an error.
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready()
