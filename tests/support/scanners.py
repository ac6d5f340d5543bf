"""The security scanners reviewers of this field run, as the tests run them:

* ``systemd-analyze security`` on the test host (its own systemd judges the units);
* gixy (gixy-ng from PyPI, in the test extra) on this machine, over ``nginx -T`` of
  the test host: the effective configuration, every include resolved;
* testssl.sh (Debian's package, installed by scripts/setup.sh) on this machine against
  the test host's 443 as published on 127.0.0.1, with no DNS lookups.

Each returns plain data for the test to assert on; none of them decides pass or fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from testbed.hosts import TestHost

GIXY = str(Path(sys.executable).with_name("gixy"))
_SCORE = re.compile(r"Overall exposure level for \S+: (\d+\.\d) ([A-Z]+)")


@dataclass(frozen=True)
class Exposure:
    score: float
    word: str

    def __str__(self) -> str:
        return f"{self.score:.1f} {self.word}"


def exposure(host: TestHost, unit: str) -> Exposure:
    """``systemd-analyze security UNIT`` on the host, as the scanner prints it."""
    out = host.exec(["systemd-analyze", "security", "--no-pager", unit], timeout=120).stdout
    match = _SCORE.search(out)
    assert match, out
    return Exposure(float(match.group(1)), match.group(2))


def passes_threshold(host: TestHost, unit: str, threshold: float) -> tuple[bool, str]:
    """``systemd-analyze security --threshold=N`` (N in tenths), the scanner's own gate."""
    proc = host.exec(["systemd-analyze", "security", "--no-pager", f"--threshold={round(threshold * 10)}",
                      unit], check=False, timeout=120)
    return proc.returncode == 0, proc.stdout[-3000:]


def gixy_findings(host: TestHost) -> list[dict[str, str]]:
    """gixy's findings over ``nginx -T`` of the host (each has severity, plugin, summary)."""
    dump = host.exec(["nginx", "-T"], timeout=60).stdout
    proc = subprocess.run([GIXY, "-f", "json", "-"], input=dump, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0 or proc.stdout.strip().startswith("["), proc.stderr
    findings: list[dict[str, str]] = json.loads(proc.stdout or "[]")
    return findings


def tls_scan(port: int) -> dict[str, str]:
    """testssl.sh's protocol and cipher-category checks of 127.0.0.1:PORT, as {id:
    finding} (e.g. ``TLS1: "not offered"``, ``cipherlist_LOW: "not offered"``). Offline:
    no DNS lookups, no update check exists in Debian's package."""
    testssl = shutil.which("testssl") or shutil.which("testssl.sh")
    assert testssl, "testssl.sh is not installed (scripts/setup.sh installs Debian's package)"
    with tempfile.TemporaryDirectory(prefix="reconciler-testssl-") as tmp:
        report = Path(tmp) / "report.json"
        proc = subprocess.run(
            [testssl, "--quiet", "--nodns", "none", "--warnings", "off", "--color", "0",
             "--connect-timeout", "20", "--openssl-timeout", "20", "--protocols", "--std",
             "--jsonfile", str(report), f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=900, check=False, cwd=tmp)
        assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
        entries = json.loads(report.read_text())
    return {e["id"]: e["finding"] for e in entries}


WEAK_CIPHER_CATEGORIES = ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                          "cipherlist_3DES_IDEA", "cipherlist_AVERAGE")
"""testssl's categories of weak suites; AVERAGE is the obsolete CBC ones."""
