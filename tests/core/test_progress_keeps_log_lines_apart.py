"""While the live progress of an apply is drawn on a terminal, a log line (a warning
from a provider, say) is printed on a line of its own above the progress rows, never
glued onto one. Driven through a pseudo-terminal; the screen is replayed from the raw
output (carriage returns, cursor-up, erase-line)."""

from __future__ import annotations

import re
import sys

import pexpect

SCRIPT = r"""
import time
from reconciler.terminal import ApplyProgress, import_structlog_without_rich
import_structlog_without_rich()
import structlog
from reconciler.logs import configure
from reconciler.plan import Action, Change
from reconciler.report import Status

configure(fmt="console")
log = structlog.get_logger("test")
change = Change("web", "files", "/etc/x", Action.UPDATE)
with ApplyProgress({"web": 2, "db": 1}, color=True) as progress:
    progress.update("web", 0, 2, change, None)
    time.sleep(0.3)
    log.warning("retention skipped a file", path="/var/log/x.gz")
    progress.update("web", 1, 2, change, Status.APPLIED)
    time.sleep(0.3)
    progress.update("web", 2, 2, change, Status.APPLIED)
    progress.update("db", 1, 1, change, Status.FAILED)
    time.sleep(0.3)
print("END")
"""

TOKEN = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|(\r\n|\n)|(\r)|([^\x1b\r\n]+)")


def replay(raw: str) -> list[str]:
    screen, row, col = [""], 0, 0
    for m in TOKEN.finditer(raw):
        args, cmd, newline, cr, text = m.groups()
        if text is not None:
            line = screen[row]
            screen[row] = line[:col].ljust(col) + text + line[col + len(text):]
            col += len(text)
        elif newline:
            row, col = row + 1, 0
            if row == len(screen):
                screen.append("")
        elif cr:
            col = 0
        elif cmd == "A":
            row = max(0, row - int(args or 1))
        elif cmd == "K":
            screen[row] = "" if args == "2" else screen[row][:col]
    return [line.rstrip() for line in screen]


def test_log_lines_stay_apart_from_progress_rows() -> None:
    child = pexpect.spawn(sys.executable, ["-c", SCRIPT], encoding="utf-8", timeout=60, dimensions=(30, 120))
    child.expect_exact("END")
    raw = str(child.before)
    child.expect(pexpect.EOF)
    screen = [line for line in replay(raw) if line]
    [warning] = [line for line in screen if "retention skipped a file" in line]
    assert "━" not in warning and "web" not in warning.split("retention")[0]
    rows = [line for line in screen if "━" in line]
    assert any(row.startswith("✓ web") and "2/2 done" in row for row in rows), rows
    assert any("db" in row and "1/1 done, 1 not applied" in row for row in rows), rows
    assert screen.index(warning) < screen.index(rows[-1])  # above the rows
