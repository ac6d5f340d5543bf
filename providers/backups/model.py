"""The ``backups`` resource as the spec writes it.

A backup takes a PostgreSQL dump or a tarball of paths on a schedule, keeps it
locally (``destination``, ``keep``), may copy it to offsite targets after it
succeeds (``offsite``), and may be proven restorable by a restore drill
(``verify``). The host side of all three is one script (``script.py``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reconciler.provider import Resource

Compression = Literal["gzip", "zstd", "none"]


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


class OffsiteTarget(_Strict):
    """Another host that receives a copy of every backup, over SSH with rsync.

    The source host logs in as ``user`` with its own generated key (see
    ``providers/backups/provider.py``); the target's ``authorized_keys`` should pin
    that key to ``rrsync -wo PATH`` so it can only write into ``path``."""

    name: str = Field(description="Names the target in messages, status and `--from-offsite`.")
    host: str = Field(description="The target's host name in this spec: `reconcile backup verify/recover` "
                                  "read copies through the reconciler's own connection to it.")
    address: str = Field(description="Host name or IP address the source host connects to.")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port on the target.")
    user: str = Field(description="The restricted account on the target (rrsync forced command).")
    path: str = Field(description="Directory on the target the account writes into (rrsync's directory).")
    keep: Keep = Field(default_factory=Keep,
                       description="Retention on the target, applied by the source after each copy; "
                                   "the newest copy is always kept.")
    host_key: str | None = Field(default=None,
                                 description='The target\'s SSH host key ("ssh-ed25519 AAAA..."); unset: the '
                                             "first connection's key is trusted and pinned.")
    encrypt_to: list[str] = Field(default_factory=list,
                                  description="age recipients (age1...): copies are encrypted on the source "
                                              "host; the matching identity stays with the operator.")


class Verify(_Strict):
    """A restore drill: restore the newest backup somewhere throwaway and check it."""

    schedule: str | None = Field(default=None,
                                 description='Cron schedule of the drill (e.g. "0 4 1 * *", monthly); '
                                             "unset: only `reconcile backup verify`.")
    image: str | None = Field(default=None,
                              description="PostgreSQL image of the throwaway container (default: the image "
                                          "of the source container).")
    tables: list[str] = Field(default_factory=list,
                              description="Tables that must exist in the restored database (schema.table or "
                                          "table, lower case).")
    min_rows: dict[str, int] = Field(default_factory=dict,
                                     description="table -> fewest rows the restored table may have.")
    paths: list[str] = Field(default_factory=list,
                             description="For path backups: files or directories the archive must contain.")
    timeout: int = Field(default=900, ge=30, description="Seconds the whole drill may take.")


class Backup(Resource):
    name: str = Field(description="Names the job, its files and its backups (NAME-TIMESTAMP.sql.gz).")
    schedule: str = Field(description='Cron schedule in the host\'s time zone, e.g. "0 2 * * *" or "@daily".')
    source: BackupSource = Field(description="What to back up: a PostgreSQL database or paths.")
    destination: str = Field(description="Directory the backups are written to (created if missing).")
    compression: Compression = Field(default="gzip", description="gzip, zstd or none.")
    keep: Keep = Field(default_factory=Keep,
                       description="Both limits apply; the newest good backup is always kept. "
                                   "Unset: keep every backup.")
    offsite: list[OffsiteTarget] = Field(
        default_factory=list, description="Targets each good backup is copied to after it is taken.")
    verify: Verify | None = Field(default=None, description="Restore drill checks, and its schedule.")
