"""cron_jobs: one cron entry per resource, in its own file ``/etc/cron.d/reconciler-job-NAME``.

The file begins with a header naming its owner (``# Managed by reconciler
(cron_jobs:NAME)``); it is written atomically, root-owned and 0644, which Debian's
cron requires (it ignores group- or world-writable files, and file names with dots).
A plan shows the file as a unified diff (``text_fields``); observing every job of a
host is one remote command.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from pydantic import Field

from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Provider, Resource, State

CRON_DIR = "/etc/cron.d"
MODE = "0644"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_MACROS = {"@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_FIELD = re.compile(r"^[0-9A-Za-z*/,-]+$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# One line per job that has a regular file (never a symlink): NAME, sha256, mode.
OBSERVE = r"""
dir=$1; shift
for name do
  f="$dir/reconciler-job-$name"
  if [ -f "$f" ] && [ ! -L "$f" ]; then
    sum=$(sha256sum < "$f") && printf '%s\t%s\t%s\n' "$name" "${sum%% *}" "$(stat -c %a -- "$f")"
  fi
done
exit 0
"""


class CronJob(Resource):
    """A command that cron runs on a schedule."""

    name: str = Field(description="Names the job and its file /etc/cron.d/reconciler-job-NAME.")
    schedule: str = Field(description='Five cron fields or a macro, e.g. "*/5 * * * *" or "@daily".')
    command: str = Field(description="Command line, run by /bin/sh as cron runs it.")
    user: str = Field(default="root", description="Account the command runs as.")
    environment: dict[str, str] = Field(default_factory=dict,
                                        description="Variables set for the command, e.g. MAILTO.")


def path_of(name: str) -> str:
    return f"{CRON_DIR}/reconciler-job-{name}"


def render(job: CronJob) -> str:
    """The whole file: a pure function of the resource, so plan and apply agree."""
    lines = [f"# Managed by reconciler (cron_jobs:{job.name}); edits are overwritten by the next apply.",
             *(f"{key}={value}" for key, value in sorted(job.environment.items())),
             f"{' '.join(job.schedule.split())} {job.user} {job.command}"]
    return "\n".join(lines) + "\n"


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class CronJobsProvider(Provider[CronJob]):
    kind = "cron_jobs"
    model = CronJob
    order = 60  # after files, users and services, which a job may use
    description = "Cron jobs, one /etc/cron.d file each."
    text_fields = frozenset({"content"})

    def resource_id(self, resource: CronJob) -> str:
        return resource.name

    def validate(self, resource: CronJob) -> list[Issue]:
        """Offline checks, each at the field it is about (the CLI adds file:line:column)."""
        issues: list[Issue] = []
        if not _NAME.match(resource.name):
            issues.append(Issue(("name",), "use letters, digits, '_' and '-' "
                                           "(cron ignores other file names)"))
        fields = resource.schedule.split()
        if not (len(fields) == 1 and fields[0] in _MACROS) and not (
                len(fields) == 5 and all(_FIELD.match(f) for f in fields)):
            issues.append(Issue(("schedule",), f"{resource.schedule!r}: write five fields "
                                               "(minute hour day month weekday) or a macro such as @daily"))
        if "\n" in resource.command or not resource.command.strip():
            issues.append(Issue(("command",), "one line, not empty"))
        if "%" in resource.command:
            issues.append(Issue(("command",), "cron turns an unescaped % into a newline; write \\% for a "
                                              "literal percent sign", warning=True))
        if "${secret:" in resource.command or any("${secret:" in v for v in resource.environment.values()):
            issues.append(Issue(("command",), "cron files are world-readable: no ${secret:...} here"))
        issues += [Issue(("environment", key), "not a variable name") for key in resource.environment
                   if not _VARIABLE.match(key)]
        return issues

    def requires(self, resource: CronJob) -> list[str]:
        return [f"users:{resource.user}"]  # ignored when the spec does not manage that user

    def desired(self, resource: CronJob, ctx: HostContext) -> State:
        return {"content": digest(render(resource)), "mode": MODE}

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, CronJob]) -> dict[
            str, State | None]:
        found: dict[str, State | None] = dict.fromkeys(ids)
        if ids:
            out = ctx.transport.run_script(OBSERVE, [CRON_DIR, *ids]).out
            for line in out.splitlines():
                name, sha, mode = line.split("\t")
                found[name] = {"content": "sha256:" + sha, "mode": mode.rjust(4, "0")}
        return found

    def desired_text(self, resource: CronJob, field_name: str, ctx: HostContext) -> str | None:
        return render(resource) if field_name == "content" else None

    def text_path(self, rid: str, field_name: str, actual: State) -> str | None:
        return path_of(rid)

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        if item.change.action is Action.DELETE:
            ctx.transport.run(["rm", "-f", "--", path_of(item.change.id)])
            return
        assert isinstance(item.resource, CronJob)
        ctx.transport.write_file(path_of(item.resource.name), render(item.resource).encode(), mode=MODE)
