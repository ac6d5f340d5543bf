"""Retention of backups and logs: delete the files in a directory that are over
age, count or total-size limits, at converge time and on a cron schedule.

The observed state of a rule includes the files over the limits (path, mtime,
size and which limit); the desired state is "none"; so the plan names every file
apply would delete, one field each, and apply deletes exactly that list (the
script re-checks each file and skips one that changed since the plan). The cron
entry runs an owned, self-contained script with the same selection code; see
``providers._retention_script`` for the rules and the symlink guarantees.

A rule whose script is not installed yet is a *create* even though observation
returns a state for it (it has to: the files over the limits are part of that
state and must appear in the first plan), so the engine records it as created
and prunes its script and cron entry when it leaves the spec. Files are only
ever deleted by a rule that is in the spec.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from reconciler.diffing import diff_states
from reconciler.errors import ApplyError
from reconciler.logs import get_logger
from reconciler.plan import Action, FieldChange
from reconciler.provider import ApplyItem, HostContext, Issue, Prerequisite, Provider, Resource, State

from ..common.checks import check_path
from ..common.cronjob import (
    CRON_PACKAGES,
    TEXT_FIELDS,
    CronJob,
    check_job_name,
    check_no_secrets,
    check_schedule,
    parse_jobs,
    refuse_foreign,
)
from .script import OBSERVE_SH, VARIABLES, render_retention_script

log = get_logger("reconciler.providers.retention")

OVER_LIMITS = "over_limits"
PROBLEM = "problem"
# The host clock at the first observation of a run: a re-observation after apply
# judges the files as of the same instant (see providers._retention_script).
_NOW_KEY = "retention:now"

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_duration(text: str) -> int:
    """``"14d"`` -> seconds. Units: s, m, h, d, w."""
    m = _DURATION.match(text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration; write a positive number and a unit: "
                         "s, m, h, d or w (e.g. \"14d\", \"12h\")")
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_size(text: str) -> int:
    """``"1G"`` -> bytes. Units are binary (K = 1024), as ``du -h`` and ``ls -h`` count."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size; write a number with an optional unit K, M, G or T "
                         "(binary: 1K = 1024 bytes), e.g. \"1G\", \"500M\"")
    value = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])
    if value <= 0:
        raise ValueError(f"{text!r}: the size must be more than zero")
    return value


class RetentionRule(Resource):
    name: str = Field(description="Names the rule and its script/cron files.")
    path: str = Field(description="Directory whose files the rule limits (a real directory, not a symlink).")
    glob: str = Field(default="*", description="File-name pattern (matched against the base name).")
    max_age: str | None = Field(default=None, description='Delete files older than this, e.g. "14d", "12h".')
    max_count: int | None = Field(default=None, ge=1, description="Keep at most this many newest files.")
    max_total_size: str | None = Field(default=None,
                                       description='Keep the newest files up to this total size, e.g. "1G".')
    schedule: str = Field(default="@daily", description="Cron schedule of the scheduled run (host time).")
    recursive: bool = Field(default=False, description="Also limit files in subdirectories (never followed "
                                                       "through symlinks).")


def job_for(name: str) -> CronJob:
    return CronJob("retention", name, f"retention:{name}")


def _root(resource: RetentionRule) -> str:
    return posixpath.normpath(resource.path)


def _settings(resource: RetentionRule) -> dict[str, Any]:
    return {"path": _root(resource), "glob": resource.glob, "max_age": resource.max_age,
            "max_count": resource.max_count, "max_total_size": resource.max_total_size,
            "recursive": resource.recursive}


def script_variables(resource: RetentionRule) -> dict[str, str]:
    """The shell variables the script body reads (limits in seconds and bytes)."""
    return {
        "NAME": resource.name, "ROOT": _root(resource), "GLOB": resource.glob,
        "MAX_AGE": "" if resource.max_age is None else str(parse_duration(resource.max_age)),
        "MAX_COUNT": "" if resource.max_count is None else str(resource.max_count),
        "MAX_SIZE": "" if resource.max_total_size is None else str(parse_size(resource.max_total_size)),
        "RECURSIVE": "yes" if resource.recursive else "no",
    }


def render_script(resource: RetentionRule) -> str:
    """The rule's script (a pure function of the spec)."""
    return render_retention_script(job_for(resource.name), _settings(resource), script_variables(resource))


def parse_observation(text: str, ids: Sequence[str], in_spec: set[str]) -> tuple[
        int | None, dict[str, State | None]]:
    """``OBSERVE_SH`` output -> (the host's reference time, state per id).

    A rule in the spec always has a state (its files over the limits are part of
    it); one that left the spec is None once its script and entry are gone."""
    jobs, preamble = parse_jobs(text)
    host_now = next((int(f[1]) for f in preamble if f[0] == "now" and f[1:] and f[1].isdigit()), None)
    out: dict[str, State | None] = {}
    for rid in ids:
        seen = jobs.get(rid)
        if rid not in in_spec:  # left the spec: only its files matter
            out[rid] = seen.state() if seen is not None and seen.installed else None
            continue
        state = seen.state() if seen is not None else {}
        over: dict[str, dict[str, Any]] = {}
        problem: str | None = None
        for line in seen.extra if seen is not None else []:
            if line[0] == "over" and len(line) >= 5:
                path = "\t".join(line[4:])  # a tab in a file name splits the line further
                over[path] = {"mtime": int(line[1]), "size": int(line[2]), "limit": line[3]}
            elif line[0] == "problem":
                problem = "\t".join(line[1:])
        out[rid] = {**state, OVER_LIMITS: over, PROBLEM: problem}
    return host_now, out


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(info: Mapping[str, Any]) -> dict[str, Any]:
    """How one file over the limits reads in a plan."""
    return {"modified": _iso(int(info["mtime"])), "size": info["size"], "over": info["limit"]}


class RetentionProvider(Provider[RetentionRule]):
    kind = "retention"
    model = RetentionRule
    order = 80
    singleton = False
    description = "Retention of backups and logs: delete files over age, count or size limits."

    def resource_id(self, resource: RetentionRule) -> str:
        return resource.name

    def prerequisites(self, resource: RetentionRule) -> list[Prerequisite]:
        """cron runs the rule."""
        return [CRON_PACKAGES]

    def validate(self, resource: RetentionRule) -> list[Issue]:
        issues = [*check_job_name(resource.name), *check_path(resource.path),
                  *check_schedule(resource.schedule),
                  *check_no_secrets(resource.model_dump(mode="json"), "retention")]
        if not resource.glob or "/" in resource.glob or "\n" in resource.glob:
            issues.append(Issue(("glob",), "a file-name pattern without '/' or newlines "
                                           "(it matches base names)"))
        for field_name, parse in (("max_age", parse_duration), ("max_total_size", parse_size)):
            value = getattr(resource, field_name)
            if value is not None:
                try:
                    parse(value)
                except ValueError as exc:
                    issues.append(Issue((field_name,), str(exc)))
        if resource.max_age is None and resource.max_count is None and resource.max_total_size is None:
            issues.append(Issue((), "set at least one limit: max_age, max_count or max_total_size"))
        return issues

    def desired(self, resource: RetentionRule, ctx: HostContext) -> State:
        job = job_for(resource.name)
        return {**job.desired(resource.schedule, _settings(resource), render_script(resource)),
                OVER_LIMITS: {}}

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, RetentionRule]) -> dict[
            str, State | None]:
        if not ids:
            return {}
        now = ctx.scratch.get(_NOW_KEY, "")
        args = [str(now)]
        for rid in ids:
            res = resources.get(rid)
            if res is None:  # left the spec: what is installed, no selection
                args += ["no", rid, *([""] * (len(VARIABLES) - 1))]
            else:
                variables = script_variables(res)
                args += ["yes", *(variables[v] for v in VARIABLES)]
        result = ctx.transport.run_script(OBSERVE_SH, args)
        host_now, states = parse_observation(result.out, ids, set(resources))
        if host_now is not None:
            ctx.scratch.setdefault(_NOW_KEY, host_now)
        return states

    # --- plan display: the script and the cron entry as diffs --------------------------
    text_fields = TEXT_FIELDS

    def desired_text(self, resource: RetentionRule, field_name: str, ctx: HostContext) -> str | None:
        return job_for(resource.name).text(field_name, render_script(resource), resource.schedule)

    def text_path(self, rid: str, field_name: str, actual: State) -> str | None:
        return job_for(rid).text_path(field_name)

    def compare(self, desired: State, actual: State) -> list[FieldChange]:
        """Settings and files as usual; then one field per file over the limits, named
        by its path, and the directory's problem if it has one."""
        fields = diff_states({k: v for k, v in desired.items() if k != OVER_LIMITS}, actual)
        if actual.get(PROBLEM):
            fields.append(FieldChange(PROBLEM, actual[PROBLEM], None))
        for path, info in sorted((actual.get(OVER_LIMITS) or {}).items()):
            fields.append(FieldChange(f"{OVER_LIMITS}.{path}", _shown(info), None))
        return fields

    def action_for(self, fields: Sequence[FieldChange]) -> Action:
        # Observation always returns a state for a rule in the spec (it carries the
        # files over the limits), so "not installed yet" shows as an absent script.
        if any(f.path == "script" and f.old is None for f in fields):
            return Action.CREATE
        return Action.UPDATE

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        job = job_for(item.change.id)
        if item.change.action is Action.DELETE:
            job.remove(ctx)
            return
        assert isinstance(item.resource, RetentionRule) and item.desired is not None
        actual = item.actual or {}
        problem = refuse_foreign(actual, item.change.address) or actual.get(PROBLEM)
        if problem:
            raise ApplyError(str(problem))
        script = render_script(item.resource)
        if any(actual.get(k) != item.desired[k] for k in ("schedule", "script", "script_mode", "cron_entry")):
            job.install(ctx, script, item.resource.schedule)
        over: Mapping[str, Mapping[str, Any]] = actual.get(OVER_LIMITS) or {}
        if over:
            self._delete(ctx, job, script, over)

    @staticmethod
    def _delete(ctx: HostContext, job: CronJob, script: str, over: Mapping[str, Mapping[str, Any]]) -> None:
        """Delete exactly the planned files (the script skips any that changed since)."""
        lines = "".join(f"{info['mtime']}\t{info['size']}\t{path}\n" for path, info in sorted(over.items()))
        result = ctx.transport.run(["sh", "-c", script, job.script_path, "delete"], stdin=lines.encode(),
                                   check=False)
        failed: list[str] = []
        for line in result.out.splitlines():
            tag, _, rest = line.partition("\t")
            if tag == "skipped":
                path, _, why = rest.rpartition("\t")
                log.warning("retention skipped a file", host=ctx.name, rule=job.name, path=path, reason=why)
            elif tag == "failed":
                failed.append(rest)
        if failed or not result.ok:
            detail = result.err.strip() or f"exit {result.exit_code}"
            raise ApplyError(f"could not delete {', '.join(failed) or 'the planned files'}: {detail}")
