"""Health checks, run ON THE HOST after a service starts (its ports are usually bound
to 127.0.0.1 there and unreachable from where reconcile runs), and the journal tail
that explains a failure."""

from __future__ import annotations

import json
import time
from typing import Any

from reconciler.errors import ApplyError, TransportError
from reconciler.provider import HostContext

from .model import Health, Service

# One attempt. curl prints the body, then a marker line with the status (000 when
# nothing answered); its own error goes to stderr.
HTTP_PROBE = r"""
command -v curl >/dev/null 2>&1 || {
  echo "curl is not installed on the host (needed for http health checks)" >&2; exit 127; }
curl -sS --max-time "$2" -w '\n@@status=%{http_code}' -- "$1"
"""

# bash's /dev/tcp: no netcat needed, and bash is always there on Debian.
TCP_PROBE = r"""
exec timeout "$3" bash -c 'exec 3<>"/dev/tcp/$1/$2"' reconciler "$1" "$2"
"""

JOURNAL_LINES = 20
RETRY_INTERVAL = 1.0


def json_contains(actual: Any, expected: Any) -> bool:
    """True when every key of ``expected`` is in ``actual`` with an equal value (nested
    mappings compared the same way; anything else must be equal)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and json_contains(actual[k], v)
                                                for k, v in expected.items())
    return bool(actual == expected)


def judge_http(output: str, health: Health) -> tuple[bool, str]:
    """Decide one http attempt from curl's output (body + ``@@status=NNN``)."""
    body, _, status_text = output.rpartition("\n@@status=")
    status = int(status_text) if status_text.strip().isdigit() else 0
    if status == 0:
        return False, f"{health.http} did not answer"
    if status != health.expect_status:
        return False, f"{health.http} answered {status}, want {health.expect_status} (body: {body[:300]!r})"
    if health.expect_json is not None:
        try:
            data = json.loads(body)
        except ValueError:
            return False, f"{health.http} answered {status} but not JSON (body: {body[:300]!r})"
        if not json_contains(data, health.expect_json):
            return False, (f"{health.http} answered {json.dumps(data)[:300]}, "
                           f"want it to contain {json.dumps(health.expect_json)}")
    return True, f"{health.http} answered {status}"


def probe(ctx: HostContext, health: Health, attempt_timeout: float) -> tuple[bool, str]:
    """One attempt. Returns (healthy, what was seen)."""
    seconds = f"{max(attempt_timeout, 1.0):.0f}"
    if health.http is not None:
        result = ctx.transport.run_script(HTTP_PROBE, [health.http, seconds], check=False,
                                          timeout=attempt_timeout + 10)
        if result.exit_code == 127:
            raise ApplyError(result.err.strip())
        ok, seen = judge_http(result.out, health)
        return ok, seen if ok or not result.err.strip() else f"{seen}: {result.err.strip()}"
    if health.tcp is not None:
        host, _, port = health.tcp.rpartition(":")
        result = ctx.transport.run_script(TCP_PROBE, [host.strip("[]"), port, seconds], check=False,
                                          timeout=attempt_timeout + 10)
        if result.ok:
            return True, f"{health.tcp} accepts connections"
        return False, f"{health.tcp} refused or did not answer ({result.err.strip() or 'timed out'})"
    assert health.command is not None
    result = ctx.transport.run(health.command, check=False, timeout=attempt_timeout + 10)
    if result.ok:
        return True, "health command exited 0"
    detail = (result.err.strip() or result.out.strip())[-300:]
    return False, f"health command exited {result.exit_code}" + (f": {detail}" if detail else "")


def wait_healthy(ctx: HostContext, service: Service) -> None:
    """Probe until healthy or ``health.timeout`` has passed; then fail with the last
    observation and the journal tail."""
    health = service.health
    if health is None:
        return
    deadline = time.monotonic() + float(health.timeout)
    while True:
        remaining = deadline - time.monotonic()
        try:
            ok, seen = probe(ctx, health, min(5.0, max(remaining, 1.0)))
        except TransportError as exc:
            ok, seen = False, f"the probe did not complete: {exc}"
        if ok:
            return
        # No point waiting for a process that is gone for good ("activating" means
        # systemd will restart it, so that is still worth waiting for).
        gone = _stopped_state(ctx, service)
        if gone:
            raise ApplyError(f"{service.unit_name} stopped before it became healthy ({gone}); "
                             f"last check: {seen}\n" + journal_tail(ctx, service))
        if time.monotonic() + RETRY_INTERVAL > deadline:
            raise ApplyError(f"{service.unit_name} is unhealthy after {float(health.timeout):g}s: {seen}\n"
                             + journal_tail(ctx, service))
        time.sleep(RETRY_INTERVAL)


def _stopped_state(ctx: HostContext, service: Service) -> str:
    """"failed (exit-code)" when the unit is failed or inactive, else ""."""
    result = ctx.transport.run(["systemctl", "show", "-p", "ActiveState,Result", "--", service.unit_name],
                               check=False, timeout=30)
    props = dict(line.split("=", 1) for line in result.out.splitlines() if "=" in line)
    state = props.get("ActiveState", "")
    if state in ("failed", "inactive"):
        return f"{state} ({props.get('Result', 'unknown')})"
    return ""


def journal_tail(ctx: HostContext, service: Service | str) -> str:
    """The last lines of the unit's journal, for an error message."""
    unit = service.unit_name if isinstance(service, Service) else service
    try:
        result = ctx.transport.run(["journalctl", "-u", unit, "-n", str(JOURNAL_LINES), "--no-pager"],
                                   check=False, timeout=30)
    except TransportError as exc:
        return f"(journal unavailable: {exc})"
    text = (result.out.strip() or result.err.strip() or "(no journal entries)")
    lines = "\n".join("  " + line for line in text.splitlines())
    return f"Last journal lines (journalctl -u {unit} -n {JOURNAL_LINES}):\n{lines}"
