"""Headless Chromium (Debian's ``chromium`` package) for the tests that look at a page
the way a person would (no tests here).

Driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: Chromium
reads commands on fd 3 and writes replies and events on fd 4, JSON messages each
ended by a NUL byte), so no debugging port is opened and no client library or
browser download is needed. Chromium runs as root here, hence ``--no-sandbox``;
its background services are off and every address but loopback goes to a dead
proxy, so the only traffic it can make is to 127.0.0.1 (the network rule).

``Browser().open(url)`` gives a ``Tab``: its visible text (``text``), the value of
an expression (``evaluate``) and a screenshot of the whole page (``screenshot``).
The tab is never navigated by these helpers: a page that reloads itself does so on
its own, as it would in front of a person.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", "--disable-default-apps", "--disable-domain-reliability",
         "--disable-client-side-phishing-detection", "--disable-breakpad", "--metrics-recording-only",
         "--mute-audio", "--disable-dev-shm-usage", "--dns-prefetch-disable",
         "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
         # Anything not on loopback (which Chromium never proxies) goes to a port nobody listens on.
         "--proxy-server=http://127.0.0.1:9")
ARTIFACTS = Path(__file__).resolve().parents[2] / ".testbed" / "artifacts"
"""Where screenshots are kept after the test run (git-ignored)."""


def chromium() -> str | None:
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    pass


def _high(fds: tuple[int, int]) -> tuple[int, int]:
    """The pipe's ends moved to descriptors >= 10, so the shell's ``3<&N 4>&M`` cannot
    clobber one of them (a pipe end that happens to be fd 3 or 4 itself)."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved[0], moved[1]


class Browser:
    """One headless Chromium process with a fresh profile; use as a context manager."""

    def __init__(self, *, width: int = 1280, height: int = 1600, timeout: float = 30.0) -> None:
        binary = chromium()
        if binary is None:
            raise BrowserError("chromium is not installed (scripts/setup.sh installs Debian's chromium)")
        self.width, self.height, self.timeout = width, height, timeout
        self.profile = tempfile.mkdtemp(prefix="reconciler-chromium-")
        to_browser_r, self._to_browser = _high(os.pipe())
        self._from_browser, from_browser_w = _high(os.pipe())
        argv = [binary, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
                "--remote-debugging-pipe", "about:blank"]
        # fd 3 and 4 in the browser are the pipe ends it expects; bash puts them there (dash
        # cannot name a descriptor above 9).
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self.log = Path(self.profile) / "chromium.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(["bash", "-c", script, *argv], pass_fds=(to_browser_r, from_browser_w),
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrowserError):
                self.call("Browser.close", timeout=5)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    # ------------------------------------------------------------------ the protocol
    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Send one command and wait for its reply (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(f"chromium is gone: {exc}\n{self.tail()}") from exc
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)
            del self.events[:-200]

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"chromium did not answer in time\n{self.tail()}")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise BrowserError(f"chromium closed its pipe\n{self.tail()}")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        data: dict[str, Any] = json.loads(raw)
        return data

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def open(self, url: str) -> Tab:
        if not url.startswith(("http://127.0.0.1:", "about:")):
            raise BrowserError(f"only 127.0.0.1 is opened in tests, not {url}")
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        tab = Tab(self, session)
        tab.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        tab.call("Page.enable")
        tab.call("Page.navigate", {"url": url})
        return tab


class Tab:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.call(method, params, session=self.session)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def text(self) -> str:
        """What a person sees on the page (``innerText``), "" while it loads."""
        value = self.evaluate("document.readyState === 'complete' && document.body ? "
                              "document.body.innerText : ''")
        return str(value or "")

    def wait_text(self, what: str, probe: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if probe(text):
                return text
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for the page to show {what}; "
                             f"it shows:\n{text[:4000]}")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport) at ``path``."""
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


def keep_artifact(path: Path, name: str) -> Path:
    """Copy a test's file to ``.testbed/artifacts/NAME`` (kept after the run) and say where."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = ARTIFACTS / name
    shutil.copyfile(path, kept)
    print(f"artifact: {kept}")
    return kept
