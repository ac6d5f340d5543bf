"""Scheduled backups: a PostgreSQL database (``pg_dump`` through ``docker exec``) or
a set of paths (a tarball), written to a local directory on a cron schedule, pruned
by ``keep``, copied to offsite targets and proven restorable by restore drills.

Each backup installs owned files (see ``providers/common/cronjob.py``): the
self-contained script ``/usr/local/lib/reconciler/backup-NAME`` (rendered from the
spec; its guarantees are in ``script.py``), the cron entry
``/etc/cron.d/reconciler-backup-NAME`` that runs exactly it and, with
``verify.schedule``, ``/etc/cron.d/reconciler-drill-NAME`` that runs its ``verify``.
With ``offsite`` targets the host also gets its own SSH key,
``/var/lib/reconciler/backups/NAME-offsite.key``, generated there on first apply
(never shown, never leaves the host); its public half is published (see
``BackupsProvider``) for the targets' ``authorized_keys``. ``reconcile backup ...``
(``cli.py``) runs the same script over SSH.

Observation is one command for every backup on the host: the hashes of the files,
the script's mode, its settings line, the cron schedule, the key's public half and
the status files (last backup, offsite copy and drill). Deleting a backup resource
removes the entries and the script and never the backups already taken (they are
data) nor the key.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.errors import ApplyError
from reconciler.plan import Action
from reconciler.provider import ApplyItem, HostContext, Issue, JobResult, Prerequisite, Provider, State

from ..common.checks import check_account, check_path
from ..common.cronjob import (
    CRON_DIR,
    CRON_MODE,
    CRON_PACKAGES,
    DESCRIBE_JOB_SH,
    TEXT_FIELDS,
    CronJob,
    check_job_name,
    check_no_secrets,
    check_schedule,
    digest,
    normalize_schedule,
    parse_jobs,
    refuse_foreign,
)
from .model import Backup, OffsiteTarget, Verify
from .script import render_backup_script

# Conservative on purpose: these reach pg_dump/psql as --dbname/--username values,
# where a string with '=' would be read as a connection string.
_PG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Lower case only: the drill splices them into SQL unquoted (and re-checks them).
_TABLE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")
_ADDRESS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:_-]*$")
_HOST_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}$")
_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")

STATE_DIR = "/var/lib/reconciler/backups"
"""Where a backup's status files, offsite key and known_hosts files live (root, 0700)."""
OFFSITE_TIMEOUT = 3600
"""Seconds one rsync call to a target may take (a deadline, so a hung target cannot stall cron)."""

def job_for(name: str) -> CronJob:
    return CronJob("backup", name, f"backups:{name}")


def key_path(name: str) -> str:
    """The backup's offsite SSH private key on its host (``.pub`` beside it)."""
    return f"{STATE_DIR}/{name}-offsite.key"


def drill_cron_path(name: str) -> str:
    # Its own prefix: "reconciler-backup-NAME-drill" could be another backup's entry.
    return f"{CRON_DIR}/reconciler-drill-{name}"


def render_drill_cron(resource: Backup) -> str | None:
    """The cron.d file of the scheduled restore drill, or None without a schedule."""
    if resource.verify is None or resource.verify.schedule is None:
        return None
    job = job_for(resource.name)
    return (f"# Managed by reconciler ({job.address}): the restore drill of {job.script_path}.\n"
            "# Generated from the spec; local edits are overwritten by the next `reconcile apply`.\n"
            "SHELL=/bin/sh\n"
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            f"{normalize_schedule(resource.verify.schedule)} root {job.script_path} verify\n")


def _offsite_settings(target: OffsiteTarget) -> dict[str, Any]:
    return target.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {
        "name": target.name, "address": target.address, "user": target.user, "path": target.path}


def _settings(resource: Backup) -> dict[str, object]:
    """The settings recorded in the script and compared in plans."""
    settings: dict[str, object] = {
        "source": resource.source.model_dump(mode="json", exclude_none=True),
        "destination": posixpath.normpath(resource.destination),
        "compression": resource.compression,
        "keep": resource.keep.model_dump(mode="json", exclude_none=True)}
    if resource.offsite:
        settings["offsite"] = [_offsite_settings(t) for t in resource.offsite]
    if resource.verify is not None:
        settings["verify"] = resource.verify.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    return settings


def drill_tables(verify: Verify) -> list[str]:
    """The tables a drill checks: ``tables``, then any ``min_rows`` table not listed there."""
    return list(dict.fromkeys([*verify.tables, *verify.min_rows]))


def _offsite_line(target: OffsiteTarget) -> str:
    """One target as the script reads it ('|'-separated). Values that came from host
    variables are checked here, as validation saw only their references."""
    problems = [f"address {target.address!r}" for _ in [0] if not _ADDRESS.match(target.address)]
    problems += [f"encrypt_to {r!r}" for r in target.encrypt_to if not _AGE_RECIPIENT.match(r)]
    if target.host_key is not None and not _HOST_KEY.match(target.host_key):
        problems.append(f"host_key {target.host_key!r}")
    if problems:
        raise ApplyError(f"offsite target {target.name}: invalid {', '.join(problems)} (after substituting "
                         "the host's variables)")
    days, count = target.keep.days, target.keep.count
    return "|".join([target.name, target.address, str(target.port), target.user,
                      "" if days is None else str(days), "" if count is None else str(count),
                      " ".join(target.encrypt_to), target.host_key or ""])


def render_script(resource: Backup) -> str:
    """The script for ``resource`` (a pure function of the spec)."""
    src = resource.source
    verify = resource.verify or Verify()
    variables = {"NAME": resource.name, "DEST": posixpath.normpath(resource.destination),
                 "COMPRESSION": resource.compression,
                 "KEEP_DAYS": "" if resource.keep.days is None else str(resource.keep.days),
                 "KEEP_COUNT": "" if resource.keep.count is None else str(resource.keep.count),
                 "STATUS_DIR": STATE_DIR, "KEY_FILE": key_path(resource.name),
                 "OFFSITE": "\n".join(_offsite_line(t) for t in resource.offsite),
                 "OFFSITE_TIMEOUT": str(OFFSITE_TIMEOUT),
                 "VERIFY_IMAGE": verify.image or "",
                 "VERIFY_TABLES": " ".join(drill_tables(verify)),
                 "VERIFY_MIN_ROWS": "\n".join(f"{t}\t{n}" for t, n in verify.min_rows.items()),
                 "VERIFY_PATHS": "\n".join(posixpath.normpath(p).lstrip("/") for p in verify.paths),
                 "VERIFY_TIMEOUT": str(verify.timeout)}
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


# Per backup: the job's files (describe_job), the drill entry's hash, the offsite key's
# presence and public half, and the status files as `status<TAB>WHAT<TAB>KEY<TAB>VALUE`.
OBSERVE_SH = DESCRIBE_JOB_SH + r"""
tab=$(printf '\t')
for name in "$@"; do
  describe_job "$name" "/usr/local/lib/reconciler/backup-$name" "/etc/cron.d/reconciler-backup-$name"
  d=/etc/cron.d/reconciler-drill-$name
  if [ -f "$d" ] && [ ! -L "$d" ]; then sum=$(sha256sum <"$d") && printf 'drill_cron\t%s\n' "${sum%% *}"; fi
  k=/var/lib/reconciler/backups/$name-offsite.key
  [ ! -f "$k" ] || printf 'offsite_key\tpresent\n'
  [ ! -f "$k.pub" ] || printf 'public_key\t%s\n' "$(head -n 1 -- "$k.pub")"
  for f in "/var/lib/reconciler/backups/$name".*; do
    [ -f "$f" ] || continue
    what=${f##*/}; what=${what#"$name".}
    case $what in backup|drill|offsite-*) ;; *) continue ;; esac
    # tr: a carriage return (ssh ends its errors with one) would split the line when read.
    while IFS="$tab" read -r key value; do printf 'status\t%s\t%s\t%s\n' "$what" "$key" "$value"; done <"$f" \
      | tr -d '\r\v\f'
  done
done
exit 0
"""


def parse_status(lines: Sequence[Sequence[str]]) -> dict[str, dict[str, Any]]:
    """``status`` lines (WHAT, KEY, VALUE) -> {WHAT: {result, time, file, message}}."""
    out: dict[str, dict[str, Any]] = {}
    for parts in lines:
        if len(parts) < 4 or parts[0] != "status":
            continue
        what, key, value = parts[1], parts[2], "\t".join(parts[3:])
        if key == "time":
            out.setdefault(what, {})[key] = int(value) if value.isdigit() else None
        elif key in ("result", "file", "message"):
            out.setdefault(what, {})[key] = value
    return out


def parse_observation(text: str, ids: Sequence[str]) -> dict[str, State | None]:
    """``OBSERVE_SH`` output -> state per id (None: neither job file is there).

    Besides the fields compared with the spec, a state carries what the host reports:
    ``public_key`` (the offsite key's public half), ``last_backup``, ``last_drill``
    and ``last_offsite`` (target -> last copy); see ``status.py``."""
    jobs, _ = parse_jobs(text)
    out: dict[str, State | None] = {}
    for rid in ids:
        seen = jobs.get(rid)
        if seen is None or not seen.installed:
            out[rid] = None
            continue
        state = seen.state()
        extra = {parts[0]: parts[1:] for parts in seen.extra if parts[0] != "status"}
        state["drill_entry"] = "sha256:" + extra["drill_cron"][0] if "drill_cron" in extra else None
        if "offsite_key" in extra:
            state["offsite_key"] = "present"
        if "public_key" in extra and extra["public_key"][0]:
            state["public_key"] = "\t".join(extra["public_key"])
        status = parse_status(seen.extra)
        state["last_backup"] = status.get("backup")
        state["last_drill"] = status.get("drill")
        state["last_offsite"] = {k.removeprefix("offsite-"): v for k, v in status.items()
                                 if k.startswith("offsite-")}
        out[rid] = state
    return out


def _within(path: str, parent: str) -> bool:
    path, parent = posixpath.normpath(path), posixpath.normpath(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _templated(value: str) -> bool:
    """A host variable's reference: substituted per host after validation, so the
    value is checked when the script is rendered (``_offsite_line``)."""
    return "${" in value


def _validate_offsite(resource: Backup) -> list[Issue]:
    issues: list[Issue] = []
    names = [t.name for t in resource.offsite]
    for i, target in enumerate(resource.offsite):
        at: tuple[str | int, ...] = ("offsite", i)
        issues += [Issue((*at, "name"), x.message) for x in check_job_name(target.name)]
        if names.count(target.name) > 1:
            issues.append(Issue((*at, "name"), f"two offsite targets are named {target.name!r}"))
        if not _templated(target.address) and not _ADDRESS.match(target.address):
            issues.append(Issue((*at, "address"), f"{target.address!r} is not a host name or IP address"))
        issues += [Issue((*at, "user"), x.message) for x in check_account(target.user, "user")]
        issues += [Issue((*at, "path"), x.message) for x in check_path(target.path)]
        if target.host_key is not None and not _templated(target.host_key) and not _HOST_KEY.match(
                target.host_key):
            issues.append(Issue((*at, "host_key"), "expected an OpenSSH public key line such as "
                                                   "'ssh-ed25519 AAAA...' (type and key, no host name)"))
        for j, recipient in enumerate(target.encrypt_to):
            if not _templated(recipient) and not _AGE_RECIPIENT.match(recipient):
                issues.append(Issue((*at, "encrypt_to", j), f"{recipient!r} is not an age recipient "
                                                            "(age1..., as `age-keygen -y` prints it)"))
        if target.keep.days is None and target.keep.count is None:
            issues.append(Issue((*at, "keep"), "no keep limit: every copy is kept and the target only grows",
                                warning=True))
    return issues


def _validate_verify(resource: Backup, verify: Verify) -> list[Issue]:
    issues: list[Issue] = []
    if verify.schedule is not None:
        issues += check_schedule(verify.schedule, ("verify", "schedule"))
    if verify.image is not None and not _IMAGE.match(verify.image):
        issues.append(Issue(("verify", "image"), f"{verify.image!r} is not an image reference"))
    postgres = resource.source.postgres is not None
    for i, table in enumerate(verify.tables):
        if not _TABLE.match(table):
            issues.append(Issue(("verify", "tables", i), f"{table!r}: write table or schema.table in lower "
                                                         "case (letters, digits, '_')"))
    for table, rows in verify.min_rows.items():
        if not _TABLE.match(table):
            issues.append(Issue(("verify", "min_rows", table), f"{table!r}: write table or schema.table in "
                                                               "lower case (letters, digits, '_')"))
        if rows < 0:
            issues.append(Issue(("verify", "min_rows", table), "must be 0 or more"))
    if not postgres and (verify.tables or verify.min_rows or verify.image):
        issues.append(Issue(("verify",), "tables, min_rows and image check a database; this backup "
                                         "archives paths (use verify.paths)"))
    if postgres and verify.paths:
        issues.append(Issue(("verify", "paths"), "paths check an archive; this backup dumps a database "
                                                 "(use verify.tables)"))
    for i, path in enumerate(verify.paths):
        found = check_path(path)
        issues.extend(Issue(("verify", "paths", i), f.message) for f in found)
        if not found and resource.source.paths is not None and not any(
                _within(path, p) for p in resource.source.paths):
            issues.append(Issue(("verify", "paths", i), f"{path!r} is not inside any of the backed-up paths"))
    return issues


_KEYGEN_SH = """
umask 077
mkdir -p -- "$1" && chmod 0700 -- "$1" || exit 1
[ -f "$2" ] && exit 0
rm -f -- "$2.pub"
ssh-keygen -q -t ed25519 -N "" -C "$3" -f "$2" </dev/null
"""


class BackupsProvider(Provider[Backup]):
    """Backups, their offsite copies and restore drills.

    Published value (``published_fields``): ``public_key``, the OpenSSH public half
    of the key the host generated for its offsite copies, so a target host's
    ``authorized_keys`` file can reference it as
    ``${published:SOURCE_HOST/backups:NAME/public_key}`` and the operator never
    copies keys by hand."""

    kind = "backups"
    model = Backup
    order = 70
    singleton = False
    description = ("Scheduled backups (pg_dump through docker exec, or a tarball of paths) with pruning, "
                   "offsite copies and restore drills.")
    published_fields = frozenset({"public_key"})

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
        issues += _validate_offsite(resource)
        if resource.verify is not None:
            issues += _validate_verify(resource, resource.verify)
        return issues

    def prerequisites(self, resource: Backup) -> list[Prerequisite]:
        """cron runs the job; pg_dump runs inside the container, through docker; offsite
        copies go with rsync over ssh, encrypted with age (what the script checks for)."""
        needs: list[Prerequisite] = [CRON_PACKAGES]
        if resource.source.postgres is not None:
            needs.append(("packages:docker.io", "packages:docker-ce"))
        if resource.compression == "zstd":
            needs.append("packages:zstd")
        if resource.offsite:
            needs += ["packages:rsync", "packages:openssh-client"]
        if any(target.encrypt_to for target in resource.offsite):
            needs.append("packages:age")
        return needs

    def requires(self, resource: Backup) -> list[str]:
        """A database backup goes after its container when the spec manages it (an
        address the spec does not define is ignored by the engine)."""
        pg = resource.source.postgres
        return [f"containers:{pg.container}"] if pg is not None else []

    def desired(self, resource: Backup, ctx: HostContext) -> State:
        job = job_for(resource.name)
        state = job.desired(resource.schedule, _settings(resource), render_script(resource))
        drill = render_drill_cron(resource)
        state["drill_entry"] = None if drill is None else digest(drill)
        if resource.offsite:
            state["offsite_key"] = "present"
        return state

    def observe(self, ctx: HostContext, ids: Sequence[str], resources: Mapping[str, Backup]) -> dict[
            str, State | None]:
        if not ids:
            return {}
        result = ctx.transport.run_script(OBSERVE_SH, list(ids))
        return parse_observation(result.out, ids)

    # --- plan display: the script and the cron entry as diffs --------------------------
    text_fields = TEXT_FIELDS

    def desired_text(self, resource: Backup, field_name: str, ctx: HostContext) -> str | None:
        return job_for(resource.name).text(field_name, render_script(resource), resource.schedule)

    def text_path(self, rid: str, field_name: str, actual: State) -> str | None:
        return job_for(rid).text_path(field_name)

    def published(self, rid: str, state: State | None) -> dict[str, str]:
        key = (state or {}).get("public_key")
        return {"public_key": key} if isinstance(key, str) and key else {}

    def job_results(self, rid: str, state: State) -> list[JobResult]:
        """The last backup (job ``backup``), offsite copy per target (``offsite:TARGET``)
        and restore drill (``drill``) the host recorded (``status.job_results``)."""
        from .status import job_results  # status.py imports this module

        return job_results(f"{self.kind}:{rid}", state)

    def apply(self, ctx: HostContext, item: ApplyItem) -> None:
        job = job_for(item.change.id)
        if item.change.action is Action.DELETE:
            # The offsite key and the status files stay, like the backups: a backup that
            # comes back keeps its key, so the targets need no change.
            ctx.transport.run(["rm", "-f", "--", drill_cron_path(item.change.id)])
            job.remove(ctx)
            return
        assert isinstance(item.resource, Backup)
        resource = item.resource
        problem = refuse_foreign(item.actual, item.change.address)
        if problem:
            raise ApplyError(problem)
        script = render_script(resource)
        # Pre-flight with the script itself: a missing zstd, docker or rsync is an apply
        # error now, not a silent failure at 2 a.m.
        check = ctx.transport.run(["sh", "-c", script, job.script_path, "check"], check=False)
        if not check.ok:
            raise ApplyError((check.err.strip() or "the backup script's tool check failed")
                             + "; nothing was installed")
        if resource.offsite:
            self._ensure_key(ctx, resource.name)
        job.install(ctx, script, resource.schedule)
        drill = render_drill_cron(resource)
        if drill is None:
            ctx.transport.run(["rm", "-f", "--", drill_cron_path(resource.name)])
        else:
            ctx.transport.write_file(drill_cron_path(resource.name), drill.encode(), mode=CRON_MODE)

    @staticmethod
    def _ensure_key(ctx: HostContext, name: str) -> None:
        """Generate the backup's offsite key on the host unless it has one (like a
        secret: made once, never shown, kept when the spec changes)."""
        ctx.transport.run(["sh", "-c", _KEYGEN_SH, "reconciler", STATE_DIR, key_path(name),
                           f"reconciler-backup {name}@{ctx.name}"], timeout=60)
