"""The log set-up imports structlog only when something is logged (reconciler.logs):
events below the level and hidden events cost nothing; the first event that gets
through is written with the configured set-up (JSON here, on stderr, secrets
scrubbed); a plugin that logs through structlog directly gets the same set-up once
``apply_if_imported`` has run. Each case runs in a fresh interpreter, where
structlog is not yet imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=True)


def test_events_below_the_level_do_not_import_structlog() -> None:
    proc = run("import sys\n"
               "from reconciler.logs import configure, get_logger\n"
               "configure(fmt='json', hidden_events=frozenset({'change'}))\n"
               "log = get_logger('reconciler.test')\n"
               "log.debug('observed', kind='files')\n"
               "log.info('change', address='files:/a')\n"
               "print('structlog' in sys.modules)\n"
               "log.warning('retention skipped a file', path='/var/log/x.gz')\n"
               "print('structlog' in sys.modules)\n")
    assert proc.stdout.split() == ["False", "True"]
    [line] = proc.stderr.splitlines()
    event = json.loads(line)
    assert event["event"] == "retention skipped a file"
    assert event["level"] == "warning"
    assert event["path"] == "/var/log/x.gz"


def test_registered_secret_is_scrubbed_from_a_late_event() -> None:
    proc = run("from reconciler.logs import configure, get_logger\n"
               "from reconciler.sensitive import REDACTOR\n"
               "configure(fmt='json')\n"
               "REDACTOR.register('hunter2-hunter2')\n"
               "get_logger('reconciler.test').error('plan failed', error='auth hunter2-hunter2 refused')\n")
    assert "hunter2-hunter2" not in proc.stderr
    assert json.loads(proc.stderr)["event"] == "plan failed"


def test_plugin_logging_through_structlog_gets_the_set_up() -> None:
    proc = run("from reconciler.logs import apply_if_imported, configure\n"
               "configure(fmt='json', verbose=-1)\n"
               "import structlog\n"
               "apply_if_imported()\n"
               "log = structlog.get_logger('plugin')\n"
               "log.info('not shown at -q')\n"
               "log.warning('shown', n=2)\n")
    assert proc.stdout == ""  # structlog unconfigured would print to stdout
    [line] = proc.stderr.splitlines()
    assert json.loads(line)["event"] == "shown"
