"""Small helpers shared by the test bed: running commands, locks, paths, labels."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

#: Every container the test bed starts carries this label (clean-up key).
LABEL = "io.reconciler.testbed"
#: ... and this one, set to the id of the pytest session / process that started it.
SESSION_LABEL = "io.reconciler.testbed.session"
#: ... and this one, set to the pid of the process that started it (see clean-testbed.sh --stale).
PID_LABEL = "io.reconciler.testbed.pid"
#: Images built by the test bed carry these labels.
IMAGE_LABEL = "io.reconciler.testbed.image"
RECIPE_LABEL = "io.reconciler.testbed.recipe"

REPO_ROOT = Path(__file__).resolve().parent.parent


class TestbedError(RuntimeError):
    """A test bed operation failed; the message says which command and why."""

    __test__ = False  # not a pytest test class


def cache_dir() -> Path:
    """Machine-wide cache (base tarball, build logs, wheelhouse, locks)."""
    path = Path(os.environ.get("RECONCILER_TESTBED_CACHE", "/var/cache/reconciler-testbed"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def log(msg: str) -> None:
    print(f"[testbed] {msg}", file=sys.stderr, flush=True)


def _clip(text: str, limit: int = 4000) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    return "...(clipped)...\n" + text[-limit:]


def format_failure(argv: Sequence[str], returncode: int | None, stdout: str, stderr: str) -> str:
    cmd = shlex.join(argv)
    status = "timed out" if returncode is None else f"exited {returncode}"
    parts = [f"command {status}: {cmd}"]
    if stderr.strip():
        parts.append(f"--- stderr ---\n{_clip(stderr)}")
    if stdout.strip():
        parts.append(f"--- stdout ---\n{_clip(stdout)}")
    return "\n".join(parts)


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = 300,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture text output; on failure raise TestbedError with its stderr."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL if input is None else None,
        )
    except FileNotFoundError as exc:
        raise TestbedError(f"command not found: {argv[0]} (while running {shlex.join(argv)})") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise TestbedError(format_failure(argv, None, out, err) + f"\n(timeout {timeout}s)") from exc
    if check and proc.returncode != 0:
        raise TestbedError(format_failure(argv, proc.returncode, proc.stdout, proc.stderr))
    return proc


def pipe(producer: list[str], consumer: list[str], *, timeout: float) -> None:
    """Run ``producer | consumer``; raise TestbedError naming the failing side."""
    with tempfile.TemporaryFile() as perr:
        prod = subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=perr, stdin=subprocess.DEVNULL)
        try:
            cons = subprocess.run(
                consumer, stdin=prod.stdout, capture_output=True, text=True, timeout=timeout, check=False
            )
        finally:
            assert prod.stdout is not None
            prod.stdout.close()
            try:
                prod.wait(timeout=60)
            except subprocess.TimeoutExpired:
                prod.kill()
                prod.wait()
        perr.seek(0)
        if prod.returncode != 0:
            raise TestbedError(
                format_failure(producer, prod.returncode, "", perr.read().decode(errors="replace"))
            )
        if cons.returncode != 0:
            raise TestbedError(format_failure(consumer, cons.returncode, cons.stdout, cons.stderr))


@contextlib.contextmanager
def file_lock(name: str, *, timeout: float = 1800, what: str | None = None) -> Iterator[None]:
    """Machine-wide exclusive lock (fcntl) shared by concurrent sessions."""
    lock_dir = cache_dir() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{name}.lock"
    with open(path, "a+") as fh:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if not announced:
                log(f"waiting for another session holding {path} ({what or name})")
                announced = True
            if time.monotonic() > deadline:
                raise TestbedError(f"timed out after {timeout:.0f}s waiting for lock {path}")
            time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def wait_until(what: str, predicate: Callable[[], bool], *, timeout: float, interval: float = 0.5) -> None:
    """Poll ``predicate()`` until it returns true, or raise TestbedError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TestbedError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
