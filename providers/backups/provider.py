"""Scheduled backups: a PostgreSQL database (``pg_dump`` through ``docker exec``) or
a set of paths (a tarball), written to a local directory on a cron schedule and
pruned by ``keep``.

Each backup installs two owned files (see ``providers._cronjob``): the
self-contained script ``/usr/local/lib/reconciler/backup-NAME`` (rendered from the
spec; its guarantees are in ``providers._backup_script``) and the cron entry
``/etc/cron.d/reconciler-backup-NAME`` that runs exactly it. ``reconcile backup
run|list|restore`` (``providers.backups_cli``) run the same script over SSH.

Observation is one command for every backup on the host: the hashes of both
files, the script's mode, its settings line and the cron schedule. Deleting a
backup resource (it left the spec) removes the entry and the script and never
the backups already taken: they are data.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reconciler.errors import ApplyError
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, Prerequisite, Provider, Resource, State

from ..common.checks import check_path
from ..common.cronjob import (
    CRON_PACKAGES,
    OBSERVE_JOBS_SH,
    TEXT_FIELDS,
    CronJob,
    check_job_name,
    check_no_secrets,
    check_schedule,
    parse_jobs,
    refuse_foreign,
)
from .script import render_backup_script

Compression = Literal["gzip", "zstd", "none"]

# Conservative on purpose: these reach pg_dump/psql as --dbname/--username values,
# where a string with '=' would be read as a connection string.
_PG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PostgresSource(_Strict):
    container: str = Field(description="Name of the running PostgreSQL container on the host.")
    user: str = Field(default="postgres", description="Role pg_dump connects as (over the local socket).")
    database: str = Field(description="Database to dump.")


class BackupSource(_Strict):
    postgres: PostgresSource | None = Field(default=None, description="Dump a database with pg_dump.")
    paths: list[str] | None = Field(default=None, description="Absolute paths archived into one tarball.")

    @model_validator(mode="after")
    def _exactly_one(self) -> BackupSource:
        if (self.postgres is None) == (self.paths is None):
            raise ValueError("set exactly one of postgres or paths")
        return self


class Keep(_Strict):
    days: int | None = Field(default=None, ge=1,
                             description="Prune backups once they are this many days old (daily backups with "
                                         "days: 7 leave seven).")
    count: int | None = Field(default=None, ge=1, description="Prune all but this many newest backups.")


class Backup(Resource):
    name: str = Field(description="Names the job, its files and its backups (NAME-TIMESTAMP.sql.gz).")
    schedule: str = Field(description='Cron schedule in the host\'s time zone, e.g. "0 2 * * *" or "@daily".')
    source: BackupSource = Field(description="What to back up: a PostgreSQL database or paths.")
    destination: str = Field(description="Directory the backups are written to (created if missing).")
    compression: Compression = Field(default="gzip", description="gzip, zstd or none.")
    keep: Keep = Field(default_factory=Keep,
                       description="Both limits apply; the newest good backup is always kept. "
                                   "Unset: keep every backup.")


def job_for(name: str) -> CronJob:
    return CronJob("backup", name, f"backups:{name}")


def _settings(resource: Backup) -> dict[str, object]:
    """The settings recorded in the script and compared in plans."""
    return {"source": resource.source.model_dump(mode="json", exclude_none=True),
            "destination": posixpath.normpath(resource.destination),
            "compression": resource.compression,
            "keep": resource.keep.model_dump(mode="json", exclude_none=True)}


def render_script(resource: Backup) -> str:
    """The script for ``resource`` (a pure function of the spec)."""
    src = resource.source
    variables = {"NAME": resource.name, "DEST": posixpath.normpath(resource.destination),
                 "COMPRESSION": resource.compression,
                 "KEEP_DAYS": "" if resource.keep.days is None else str(resource.keep.days),
                 "KEEP_COUNT": "" if resource.keep.count is None else str(resource.keep.count)}
    if src.postgres is not None:
        variables.update(SOURCE="postgres", PG_CONTAINER=src.postgres.container, PG_USER=src.postgres.user,
                         PG_DATABASE=src.postgres.database, BACKUP_PATHS="")
    else:
        assert src.paths is not None
        # tar runs with -C / on relative names: no "Removing leading /" noise, and a
        # restore can extract into another directory.
        relative = [posixpath.normpath(p).lstrip("/") for p in src.paths]
        variables.update(SOURCE="paths", PG_CONTAINER="", PG_USER="", PG_DATABASE="",
                         BACKUP_PATHS="\n".join(relative))
    return render_backup_script(job_for(resource.name), _settings(resource), variables)


def parse_observation(text: str, ids: Sequence[str]) -> dict[str, State | None]:
    """``OBSERVE_JOBS_SH`` output -> state per id (None: neither file is there)."""
    jobs, _ = parse_jobs(text)
    out: dict[str, State | None] = {}
    for rid in ids:
        seen = jobs.get(rid)
        out[rid] = seen.state() if seen is not None and seen.installed else None
    return out


def _within(path: str, parent: str) -> bool:
    path, parent = posixpath.normpath(path), posixpath.normpath(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


class BackupsProvider(Provider[Backup]):
    kind = "backups"
    model = Backup
    order = 70
    singleton = False
    description = "Scheduled backups (pg_dump through docker exec, or a tarball of paths) with pruning."

    def resource_id(self, resource: Backup) -> str:
        return resource.name

    def validate(self, resource: Backup) -> list[Issue]:
        issues = [*check_job_name(resource.name), *check_schedule(resource.schedule),
                  *check_path(resource.destination, "destination"),
                  *check_no_secrets(resource.model_dump(mode="json"), "backup")]
        pg, paths = resource.source.postgres, resource.source.paths
        if pg is not None:
            if not _CONTAINER_NAME.match(pg.container):
                issues.append(Issue(("source", "postgres", "container"),
                                    f"{pg.container!r} is not a container name"))
            for field_name, value in (("user", pg.user), ("database", pg.database)):
                if not _PG_NAME.match(value):
                    issues.append(Issue(("source", "postgres", field_name),
                                        f"{value!r}: use letters, digits, '_' and '-', "
                                        "starting with a letter or '_'"))
        if paths is not None:
            if not paths:
                issues.append(Issue(("source", "paths"), "list at least one path"))
            for i, path in enumerate(paths):
                found = check_path(path)
                issues.extend(Issue(("source", "paths", i), f.message) for f in found)
                if not found and _within(resource.destination, path):
                    issues.append(Issue(("source", "paths", i),
                                        f"the destination {resource.destination!r} is inside {path!r}: "
                                        "each backup would contain the previous ones"))
            if len(set(map(posixpath.normpath, paths))) != len(paths):
                issues.append(Issue(("source", "paths"), "a path is listed twice"))
        if resource.keep.days is None and resource.keep.count is None:
            issues.append(Issue(("keep",), "no keep limit: every backup is kept and the destination "
                                           "only grows", warning=True))
        return issues

    def prerequisites(self, resource: Backup) -> list[Prerequisite]:
        """cron runs the job; pg_dump runs inside the container, through docker."""
        needs: list[Prerequisite] = [CRON_PACKAGES]
        if resource.source.postgres is not None:
            needs.append(("packages:docker.io", "packages:docker-ce"))
        if resource.compression == "zstd":
            needs.append("packages:zstd")
        return needs

    def requires(self, resource: Backup) -> list[str]:
        """A database backup goes after its container when the spec manages it (an
        address the spec does not define is ignored by the engine)."""
        pg = resource.source.postgres
        return [f"containers:{pg.container}"] if pg is not None else []

    def desired(self, resource: Backup, ctx: HostContext) -> State:
        return job_for(resource.name).desired(resource.schedule, _settings(resource), render_script(resource))

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, Backup]) -> dict[
            str, State | None]:
        if not ids:
            return {}
        result = ctx.transport.run_script(OBSERVE_JOBS_SH, ["backup", *ids])
        return parse_observation(result.out, ids)

    # --- plan display: the script and the cron entry as diffs --------------------------
    text_fields = TEXT_FIELDS

    def desired_text(self, resource: Backup, field_name: str, ctx: HostContext) -> str | None:
        return job_for(resource.name).text(field_name, render_script(resource), resource.schedule)

    def text_path(self, rid: str, field_name: str, actual: State) -> str | None:
        return job_for(rid).text_path(field_name)

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        job = job_for(item.change.id)
        if item.change.action is Action.DELETE:
            job.remove(ctx)
            return
        assert isinstance(item.resource, Backup)
        problem = refuse_foreign(item.actual, item.change.address)
        if problem:
            raise ApplyError(problem)
        script = render_script(item.resource)
        # Pre-flight with the script itself: a missing zstd or docker is an apply
        # error now, not a silent failure at 2 a.m.
        check = ctx.transport.run(["sh", "-c", script, job.script_path, "check"], check=False)
        if not check.ok:
            raise ApplyError((check.err.strip() or "the backup script's tool check failed")
                             + "; nothing was installed")
        job.install(ctx, script, item.resource.schedule)
