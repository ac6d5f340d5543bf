"""What the command line does differently on a terminal: colour, the live progress of
an apply, the confirmation prompt, and staying quiet when a pipe closes.

Nothing heavy is imported at module level: rich is loaded only when something is
drawn on a terminal (``ApplyProgress``, coloured text), never for ``--version``,
``validate`` or output going to a pipe or a file.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.plan import Change
    from reconciler.report import Status


def use_color(mode: str = "auto", stream: IO[str] | None = None) -> bool:
    """``--color always|never|auto``. In auto: ``NO_COLOR`` (any non-empty value, see
    no-color.org) turns colour off, ``FORCE_COLOR`` (non-empty) turns it on, otherwise
    colour only when ``stream`` is a terminal."""
    if mode == "never":
        return False
    if mode == "always":
        return True
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = stream if stream is not None else sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def interactive() -> bool:
    """Someone is at a terminal to see the plan and answer a question."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def import_structlog_without_rich() -> None:
    """Import structlog with rich hidden from it.

    structlog imports rich at import time whenever it is installed (for fancy
    tracebacks), which costs every command ~60 ms before it does anything. Logs need
    none of it; rich is loaded later, only when something is drawn on a terminal."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # makes `import rich` fail fast
    try:
        import structlog.dev  # noqa: F401
    finally:
        del sys.modules["rich"]


class PipeGuard:
    """A stdout/stderr that goes quiet when the reader goes away (``reconcile plan |
    head -1``): the first write that meets a closed pipe points the descriptor at
    /dev/null, and the command finishes normally with its usual exit code, without a
    traceback. Python ignores SIGPIPE, so a closed pipe shows up as BrokenPipeError."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def confirm(question: str) -> bool:
    """Ask on the terminal; only ``yes`` approves (as Terraform does). End of input or
    Ctrl-C is a no."""
    sys.stdout.write(f"\n{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
    sys.stdout.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return False
    if not answer.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.write("\n")
    return answer.strip() == "yes"


class ApplyProgress:
    """The live progress of an apply on a terminal: one row per host (spinner, bar,
    changes done of all, the change under way), drawn by rich on stderr. Log lines
    written meanwhile are printed above the rows, never glued onto them. Used as a
    context manager; ``update`` is the engine's ``RunOptions.progress`` callback."""

    def __init__(self, totals: dict[str, int], *, color: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        width = max((len(h) for h in totals), default=4)
        console = Console(file=sys.stderr, no_color=not color, highlight=False, emoji=False)
        self._progress = Progress(SpinnerColumn(finished_text="[green]✓[/]" if color else "✓"),
                                  TextColumn(f"{{task.fields[host]:<{width}}}"), BarColumn(bar_width=24),
                                  MofNCompleteColumn(), TextColumn("{task.fields[now]}"),
                                  console=console, redirect_stderr=True, redirect_stdout=False)
        self._tasks = {host: self._progress.add_task(host, total=total, host=host, now="waiting")
                       for host, total in totals.items() if total}
        self._failed: dict[str, int] = dict.fromkeys(totals, 0)
        self._lock = threading.Lock()

    def update(self, host: str, done: int, total: int, change: Change, status: Status | None) -> None:
        from reconciler.report import Status

        task = self._tasks.get(host)
        if task is None:
            return
        from rich.markup import escape

        with self._lock:
            if status is None:
                now = escape(f"{change.action.symbol} {change.address}")
                self._progress.update(task, completed=done, now=now)
                return
            if status is not Status.APPLIED:
                self._failed[host] += 1
            failed = self._failed[host]
            now = escape(f"{change.action.symbol} {change.address} {status.value}")
            if done >= total:
                now = f"[red]done, {failed} not applied[/]" if failed else "[green]done[/]"
            self._progress.update(task, completed=done, now=now)

    def __enter__(self) -> ApplyProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


@contextlib.contextmanager
def maybe_progress(totals: dict[str, int], *, enabled: bool, color: bool) -> Iterator[ApplyProgress | None]:
    if not enabled:
        yield None
        return
    with ApplyProgress(totals, color=color) as progress:
        yield progress
