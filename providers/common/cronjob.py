"""An owned script plus the cron entry that runs it: what ``backups`` and ``retention`` install.

Layout on the host, for a job ``PREFIX-NAME`` (``backup-db``, ``retention-app-logs``)::

    /usr/local/lib/reconciler/PREFIX-NAME    self-contained POSIX sh script, root 0755
    /etc/cron.d/reconciler-PREFIX-NAME       one entry that runs exactly that script, root 0644

Why a script beside the cron entry, not a ``reconcile`` call in cron: the job keeps
working when the reconciler is not installed on the host (it usually is not: it
runs from a laptop or CI over SSH), an operator can read and run it by hand, and
``reconcile backup run`` runs the very same file, so a manual run tests the
scheduled one.

Both files begin with a header comment naming the address that owns them. The
script carries its settings as one JSON comment line (``# reconciler-config:``),
which observation reads back, so a plan shows ``keep.days: 7 -> 14`` rather than
only two hashes; the hashes still catch any other edit. Spec values enter the
script only as single-quoted shell assignments (``shlex.quote``), never as code.

Cron notes: Debian's cron reads ``/etc/cron.d`` files only when their names are
letters, digits, ``_`` and ``-`` (no dots) and they are owned by root and not
group/other writable; it notices changes by the directory's mtime, which the
atomic rename of ``write_file`` updates. Schedules run in the host's time zone.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from reconciler.errors import ApplyError
from reconciler.provider import HostContext, Issue, State
from reconciler.transport.ops import FileWrite

SCRIPT_DIR = "/usr/local/lib/reconciler"
CRON_DIR = "/etc/cron.d"
#: The packages that run /etc/cron.d entries (any one of them), as a prerequisite.
CRON_PACKAGES = ("packages:cron", "packages:cronie", "packages:systemd-cron")
SCRIPT_MODE = "0755"
CRON_MODE = "0644"
CONFIG_MARK = "# reconciler-config: "
TEXT_FIELDS = frozenset({"script", "cron_entry"})
"""The state fields that are digests of a text (shown as diffs in plans)."""

# Same characters cron.d file names may have (run-parts rules), and short enough for a file name.
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
# croniter also accepts Quartz-style L, # and ? which Debian's cron does not: allow
# only what cron(8) understands: numbers, ranges, steps, lists, and 3-letter names
# in the month and day-of-week fields.
_NUMERIC_FIELD = re.compile(r"^[0-9*/,-]+$")
_NAMED_FIELD = re.compile(r"^(?:[0-9*/,-]|[A-Za-z]{3})+$")


def normalize_schedule(schedule: str) -> str:
    """The schedule as it is written into the cron entry (single spaces)."""
    return " ".join(schedule.split())


def schedule_problem(schedule: str) -> str | None:
    """Why ``schedule`` is not a cron expression Debian's cron runs, or None when it is."""
    text = normalize_schedule(schedule)
    if text.startswith("@"):
        if text in _CRON_MACROS:
            return None
        return (f"invalid cron expression {schedule!r}: unknown macro; use five fields "
                f"or one of {', '.join(sorted(_CRON_MACROS))}")
    fields = text.split(" ")
    if len(fields) != 5:
        return (f"invalid cron expression {schedule!r}: expected 5 fields (minute hour day-of-month "
                f"month day-of-week), got {len(fields)}")
    for index, (value, pattern) in enumerate(zip(fields, [_NUMERIC_FIELD] * 3 + [_NAMED_FIELD] * 2,
                                                 strict=True)):
        if not pattern.match(value):
            names = ("minute", "hour", "day-of-month", "month", "day-of-week")
            return (f"invalid cron expression {schedule!r}: {names[index]} field {value!r} "
                    "is not valid for cron")
    if not croniter.is_valid(text):
        try:
            croniter(text)
        except Exception as exc:  # croniter raises several unrelated types for bad input
            return f"invalid cron expression {schedule!r}: {exc}"
        return f"invalid cron expression {schedule!r}"
    return None


def check_schedule(schedule: str, path: tuple[str | int, ...] = ("schedule",)) -> list[Issue]:
    problem = schedule_problem(schedule)
    return [Issue(path, problem)] if problem else []


def check_job_name(name: str) -> list[Issue]:
    if _JOB_NAME.match(name):
        return []
    return [Issue(("name",), f"{name!r}: use letters, digits, '_' and '-' (at most 63, starting with a "
                             "letter or digit); it names a cron.d file, where cron ignores other names")]


_SECRET_REF = re.compile(r"\$\{\s*secret:")


def check_no_secrets(data: Mapping[str, Any], kind: str) -> list[Issue]:
    """Jobs are plain files readable on the host; secrets have no place in them."""
    issues: list[Issue] = []

    def walk(value: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(value, str) and _SECRET_REF.search(value):
            issues.append(Issue(path, f"{kind} settings are written into a script on the host; "
                                      "${secret:...} is not allowed here"))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, (*path, i))

    walk(dict(data), ())
    return issues


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def sh_assign(variable: str, value: str) -> str:
    """``VAR='value'``: spec data enters a script only like this, quoted."""
    return f"{variable}={shlex.quote(value)}"


@dataclass(frozen=True)
class CronJob:
    """Where one job's files live, and how they are rendered."""

    prefix: str  # "backup" or "retention"
    name: str
    address: str  # the owning resource, e.g. "backups:db"

    @property
    def script_path(self) -> str:
        return f"{SCRIPT_DIR}/{self.prefix}-{self.name}"

    @property
    def cron_path(self) -> str:
        return f"{CRON_DIR}/reconciler-{self.prefix}-{self.name}"

    def render_cron(self, schedule: str) -> str:
        """The cron.d file: header, a fixed environment, one entry running the script as root."""
        return (f"# Managed by reconciler ({self.address}): runs {self.script_path}.\n"
                "# Generated from the spec; local edits are overwritten by the next `reconcile apply`.\n"
                "SHELL=/bin/sh\n"
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                f"{normalize_schedule(schedule)} root {self.script_path}\n")

    def script_header(self, usage: str, config: Mapping[str, Any]) -> str:
        """First lines of the script: ownership, usage, and the settings as one JSON line."""
        return (f"#!/bin/sh\n"
                f"# Managed by reconciler ({self.address}); run from {self.cron_path}.\n"
                "# Generated from the spec; local edits are overwritten by the next `reconcile apply`.\n"
                "# Self-contained: needs only sh, coreutils and the tools of its job, not reconciler.\n"
                "#\n"
                + "".join(f"#   {line}\n" for line in usage.format(script=self.script_path).splitlines())
                + "#\n"
                f"{CONFIG_MARK}{json.dumps(dict(config), sort_keys=True)}\n")

    def desired(self, schedule: str, config: Mapping[str, Any], script: str) -> State:
        """The job's part of a desired state: the settings, the schedule and both files' hashes."""
        return {**config, "schedule": normalize_schedule(schedule), "script": digest(script),
                "script_mode": SCRIPT_MODE, "cron_entry": digest(self.render_cron(schedule))}

    def text(self, field_name: str, script: str, schedule: str) -> str | None:
        """The text behind a digest field of ``desired`` (``script`` or ``cron_entry``),
        for plan diffs (``Provider.desired_text``)."""
        return {"script": script, "cron_entry": self.render_cron(schedule)}.get(field_name)

    def text_path(self, field_name: str) -> str | None:
        """Where the host keeps the text of ``field_name`` (``Provider.text_path``)."""
        return {"script": self.script_path, "cron_entry": self.cron_path}.get(field_name)

    def install(self, ctx: HostContext, script: str, schedule: str) -> None:
        """Script first, then the entry, so cron never runs a missing or stale script."""
        errors = ctx.transport.write_files([
            FileWrite(self.script_path, script.encode(), SCRIPT_MODE),
            FileWrite(self.cron_path, self.render_cron(schedule).encode(), CRON_MODE, after=0)])
        problems = [e for e in errors if e is not None]
        if problems:
            raise ApplyError("; ".join(problems))

    def remove(self, ctx: HostContext) -> None:
        """Entry first, then the script. What the job produced (backups) stays."""
        problems = [e for e in ctx.transport.remove([self.cron_path, self.script_path]) if e is not None]
        if problems:
            raise ApplyError("; ".join(problems))


# Prints what is installed for one job, as TAB-separated lines after `@job<TAB>NAME`:
#   script <sha256 | other>, mode <octal>, config <json>, cron <sha256 | other>, entry <line>
# Missing files print nothing; "other" means the path exists but is not a regular file.
DESCRIBE_JOB_SH = r"""
describe_job() {
  printf '@job\t%s\n' "$1"
  if [ -L "$2" ] || { [ -e "$2" ] && [ ! -f "$2" ]; }; then
    printf 'script\tother\n'
  elif [ -f "$2" ]; then
    sum=$(sha256sum <"$2") && printf 'script\t%s\n' "${sum%% *}"
    printf 'mode\t%s\n' "$(stat -c %a -- "$2")"
    printf 'config\t%s\n' "$(sed -n 's/^# reconciler-config: //p' "$2" | head -n 1)"
  fi
  if [ -L "$3" ] || { [ -e "$3" ] && [ ! -f "$3" ]; }; then
    printf 'cron\tother\n'
  elif [ -f "$3" ]; then
    sum=$(sha256sum <"$3") && printf 'cron\t%s\n' "${sum%% *}"
    printf 'entry\t%s\n' "$(grep -v -e '^[[:space:]]*#' -e '^[A-Za-z_][A-Za-z0-9_]*=' \
      -e '^[[:space:]]*$' "$3" | head -n 1)"
  fi
}
"""

# Observes several jobs of one prefix: $1 = prefix, then job names.
OBSERVE_JOBS_SH = DESCRIBE_JOB_SH + r"""
prefix=$1; shift
for name in "$@"; do
  describe_job "$name" "/usr/local/lib/reconciler/$prefix-$name" "/etc/cron.d/reconciler-$prefix-$name"
done
exit 0
"""


@dataclass
class JobObservation:
    """What ``describe_job`` printed for one job, plus any other lines in its block."""

    script: str | None = None
    mode: str | None = None
    config: dict[str, Any] | None = None
    cron: str | None = None
    entry: str | None = None
    extra: list[list[str]] = field(default_factory=list)

    @property
    def installed(self) -> bool:
        return self.script is not None or self.cron is not None

    @property
    def schedule(self) -> str | None:
        """The schedule of the entry line: a macro, or its first five fields."""
        if not self.entry:
            return None
        parts = self.entry.split()
        if parts[0].startswith("@"):
            return parts[0]
        return " ".join(parts[:5]) if len(parts) >= 5 else None

    def state(self) -> State:
        """The job's part of an observed state, keyed like ``CronJob.desired``."""
        settings = dict(self.config or {})
        return {**settings, "schedule": self.schedule,
                "script": None if self.script is None else
                ("sha256:" + self.script if self.script != "other" else "(not a regular file)"),
                "script_mode": None if self.mode is None else self.mode.rjust(4, "0"),
                "cron_entry": None if self.cron is None else
                ("sha256:" + self.cron if self.cron != "other" else "(not a regular file)")}


def parse_jobs(text: str) -> tuple[dict[str, JobObservation], list[list[str]]]:
    """Split observation output into per-job blocks. Lines before the first ``@job``
    (global facts such as the host's clock) come back separately."""
    jobs: dict[str, JobObservation] = {}
    preamble: list[list[str]] = []
    current: JobObservation | None = None
    for line in text.splitlines():
        tag, _, rest = line.partition("\t")
        if tag == "@job":
            current = jobs.setdefault(rest, JobObservation())
            continue
        if current is None:
            preamble.append([tag, *rest.split("\t")])
        elif tag == "script":
            current.script = rest
        elif tag == "mode":
            current.mode = rest
        elif tag == "config":
            try:
                loaded = json.loads(rest) if rest else None
            except ValueError:
                loaded = None
            current.config = loaded if isinstance(loaded, dict) else None
        elif tag == "cron":
            current.cron = rest
        elif tag == "entry":
            current.entry = rest
        else:
            current.extra.append([tag, *rest.split("\t")])
    return jobs, preamble


def refuse_foreign(actual: State | None, what: str) -> str | None:
    """A message when a job path is taken by something that is not a regular file."""
    if actual is None:
        return None
    for key, path_kind in (("script", "script"), ("cron_entry", "cron entry")):
        if actual.get(key) == "(not a regular file)":
            return f"the {path_kind} path of {what} exists and is not a regular file; remove it by hand"
    return None
