"""The self-contained backup script a ``backups`` resource installs on its host.

The script is rendered from the spec: a header (ownership, usage, settings as
JSON), the settings as quoted shell assignments, then one constant POSIX sh body
shared by every backup. Verbs::

    backup-NAME [run]               take a backup, then prune by keep.days / keep.count
    backup-NAME list                newest first: MTIME<TAB>SIZE<TAB>ok|mismatch|missing<TAB>FILE
    backup-NAME restore FILE [INTO] restore one backup (INTO: database, or directory for paths)
    backup-NAME check               exit non-zero, saying why, when a tool it needs is missing

Guarantees of ``run`` (the reasons for its shape):

* A backup is written under a dot-name ending in ``.partial``, checked, fsynced and
  only then renamed to ``NAME-YYYYmmddTHHMMSSZ.sql.gz`` (or ``.tar.gz``...), so a
  partial backup is never named like a good one. Its checksum file
  (``FILE.sha256``, ``sha256sum -c`` format) is renamed into place *before* the data,
  so every good-named backup has one.
* sh has no ``pipefail``: the dump's exit status is written to a status file from
  inside the pipeline and checked explicitly. A failing ``pg_dump`` (wrong database,
  container stopped) therefore never yields a "good" gzip of an empty stream; the
  temporary file is removed, earlier backups are kept, and the exit status is 1.
* Pruning runs only after a successful backup. A backup is pruned once it is
  ``keep.days`` days old (age >= days x 24 h, so daily backups with ``days: 7``
  leave seven) *or* when it is not among the ``keep.count`` newest (both limits
  hold), by modification time; the newest backup with a checksum file and
  the backup just written are never pruned. Only files named like this job's
  backups are ever considered.
* Runs of one job are serialised with ``flock`` (cron and a manual run cannot overlap).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..common.cronjob import CronJob, sh_assign

USAGE = """\
{script} [run]                 take a backup now, then prune old ones by `keep`
{script} list                  newest first: mtime, size, checksum status, file
{script} restore FILE [INTO]   restore one backup (INTO: a database, or a directory)
{script} check                 check that the tools it needs are installed"""

BODY = r"""
set -u
umask 077
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
TAB=$(printf '\t')
NL='
'
case $COMPRESSION in gzip) EXT_C=.gz ;; zstd) EXT_C=.zst ;; *) EXT_C= ;; esac
case $SOURCE in postgres) EXT=.sql$EXT_C ;; *) EXT=.tar$EXT_C ;; esac
# Names of this job's backups; nothing else in DEST is listed, restored or pruned.
FILE_RE="^$NAME-[0-9]{8}T[0-9]{6}Z\.(sql|tar)(\.gz|\.zst)?\$"
work=

say() { printf 'backup %s: %s\n' "$NAME" "$*"; }
note() {  # stderr, and syslog so that scheduled runs leave a trace
  printf 'backup %s: %s\n' "$NAME" "$*" >&2
  logger -t reconciler-backup -- "$NAME: $*" 2>/dev/null || true
}
fail() { note "FAILED: $*"; exit 1; }
cleanup() { [ -z "$work" ] || rm -rf -- "$work"; [ -z "${tmp:-}" ] || rm -f -- "$tmp" "$tmp.sha256"; }

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  printf 'backup %s: %s is not installed on this host%s\n' "$NAME" "$1" "${2:+ ($2)}" >&2
  missing=1
}
do_check() {
  missing=0
  for tool in sha256sum flock find sort grep sed stat mktemp; do need "$tool"; done
  case $COMPRESSION in gzip) need gzip ;; zstd) need zstd "install the zstd package" ;; esac
  case $SOURCE in postgres) need docker ;; paths) need tar ;; esac
  return $missing
}

compress() { case $COMPRESSION in gzip) gzip -c ;; zstd) zstd -q -c ;; *) cat ;; esac; }
# By the file's extension, so backups made before a change of compression still restore.
unpack() { case $1 in *.gz) gzip -dc -- "$1" ;; *.zst) zstd -q -dc -- "$1" ;; *) cat -- "$1" ;; esac; }
verify_packed() {  # $1 file, $2 its final name
  case $2 in *.gz) gzip -t -- "$1" ;; *.zst) zstd -q -t -- "$1" ;; *) true ;; esac
}
sha_of() { s=$(sha256sum <"$1") && printf '%s\n' "${s%% *}"; }

# This job's backups, newest first: MTIME<TAB>SIZE<TAB>FILE (mtime in whole seconds).
backups() {
  [ -d "$DEST" ] || return 0
  find "$DEST" -mindepth 1 -maxdepth 1 -type f -name "$NAME-*" ! -name "*$NL*" -printf '%T@\t%s\t%f\n' \
    | grep -E "^-?[0-9.]+$TAB[0-9]+$TAB${FILE_RE#^}" \
    | sed 's/^\(-\{0,1\}[0-9]*\)\.[0-9]*/\1/' \
    | sort -t "$TAB" -k1,1nr -k3,3r
}

checksum_state() {  # $1 file name: ok | mismatch | missing
  [ -f "$DEST/$1.sha256" ] || { echo missing; return; }
  read -r want _ <"$DEST/$1.sha256" || want=
  if [ "$want" = "$(sha_of "$DEST/$1")" ]; then echo ok; else echo mismatch; fi
}

prune() {  # $1: the backup just written, never pruned (even when the clock ran backwards)
  [ -n "$KEEP_DAYS$KEEP_COUNT" ] || return 0
  now=$(date +%s)
  backups >"$work/list" || fail "cannot list $DEST"
  n=0; newest_good=; pruned=0
  while IFS="$TAB" read -r mtime _size name; do
    n=$((n + 1))
    if [ -z "$newest_good" ] && [ -f "$DEST/$name.sha256" ]; then
      newest_good=$name  # never pruned, whatever the limits say
      continue
    fi
    [ "$name" != "$1" ] || continue
    over=
    if [ -n "$KEEP_COUNT" ] && [ "$n" -gt "$KEEP_COUNT" ]; then over="beyond the $KEEP_COUNT newest"; fi
    if [ -n "$KEEP_DAYS" ] && [ $((now - mtime)) -ge $((KEEP_DAYS * 86400)) ]; then
      over="$KEEP_DAYS days old or more"
    fi
    if [ -n "$over" ]; then
      rm -f -- "$DEST/$name" "$DEST/$name.sha256" || fail "cannot remove $DEST/$name"
      say "pruned $name ($over)"
      pruned=$((pruned + 1))
    fi
  done <"$work/list"
  # Checksums whose backup is gone (a crash between the two renames) go too.
  for sum in "$DEST/$NAME-"*.sha256; do
    [ -f "$sum" ] || continue
    data=${sum%.sha256}
    printf '%s\n' "${data##*/}" | grep -Eq "$FILE_RE" || continue
    [ -e "$data" ] || rm -f -- "$sum"
  done
  [ "$pruned" -eq 0 ] || sync -- "$DEST" 2>/dev/null || true
}

do_run() {
  do_check || fail "missing tools (see above); no backup was taken"
  mkdir -p -- "$DEST" || fail "cannot create $DEST"
  lockdir=/run/lock; [ -d "$lockdir" ] || lockdir=$DEST
  exec 9>"$lockdir/reconciler-backup-$NAME.lock" || fail "cannot open the lock file in $lockdir"
  flock -n 9 || fail "another run of this backup is in progress"
  trap cleanup EXIT
  trap 'exit 1' HUP INT TERM
  work=$(mktemp -d) || fail "mktemp failed"
  ts=$(date -u +%Y%m%dT%H%M%SZ)
  while [ -e "$DEST/$NAME-$ts$EXT" ]; do sleep 1; ts=$(date -u +%Y%m%dT%H%M%SZ); done
  file=$NAME-$ts$EXT
  tmp=$DEST/.$file.partial
  case $SOURCE in
    postgres)
      { docker exec "$PG_CONTAINER" pg_dump --username="$PG_USER" --no-password --dbname="$PG_DATABASE"
        echo $? >"$work/status"; } | compress >"$tmp"
      ;;
    paths)
      { printf '%s\n' "$BACKUP_PATHS" | tar -C / --create --file=- --verbatim-files-from --files-from=-
        echo $? >"$work/status"; } | compress >"$tmp"
      ;;
  esac
  packed=$?
  read -r dumped <"$work/status" || dumped=unknown
  case $SOURCE:$dumped in
    *:0) ;;
    paths:1) note "warning: some files changed while they were read (tar exit 1); the archive is complete" ;;
    postgres:*) fail "pg_dump exited $dumped (error above); no backup was written, earlier ones are kept" ;;
    *) fail "tar exited $dumped (error above); no backup was written, earlier ones are kept" ;;
  esac
  [ "$packed" -eq 0 ] || fail "$COMPRESSION exited $packed; no backup was written, earlier ones are kept"
  [ -s "$tmp" ] || fail "the backup came out empty; no backup was written, earlier ones are kept"
  verify_packed "$tmp" "$file" || fail "the compressed backup does not verify; no backup was written"
  sync -- "$tmp" || fail "fsync of $tmp failed"
  sum=$(sha_of "$tmp") || fail "cannot checksum $tmp"
  printf '%s  %s\n' "$sum" "$file" >"$tmp.sha256" && sync -- "$tmp.sha256" \
    || fail "cannot write the checksum file"
  mv -f -- "$tmp.sha256" "$DEST/$file.sha256" || fail "cannot rename the checksum file"
  mv -f -- "$tmp" "$DEST/$file" || fail "cannot rename the backup into place"
  tmp=
  sync -- "$DEST" 2>/dev/null || sync
  say "wrote $DEST/$file ($(stat -c %s -- "$DEST/$file") bytes, sha256 $sum)"
  logger -t reconciler-backup -- "$NAME: wrote $DEST/$file" 2>/dev/null || true
  prune "$file"
}

do_list() {
  backups | while IFS="$TAB" read -r mtime size file; do
    printf '%s\t%s\t%s\t%s\n' "$mtime" "$size" "$(checksum_state "$file")" "$file"
  done
}

valid_db_name() { case $1 in ''|-*|*[!A-Za-z0-9_-]*) return 1 ;; esac; }

restore_postgres() {  # $1 backup path, $2 database
  valid_db_name "$2" || fail "invalid database name '$2' (letters, digits, '_' and '-')"
  if ! docker exec "$PG_CONTAINER" psql --username="$PG_USER" --no-password --no-psqlrc --dbname="$2" \
      -tAc 'select 1' >/dev/null 2>"$work/probe"; then
    if ! docker exec "$PG_CONTAINER" createdb --username="$PG_USER" --no-password -- "$2" \
        2>"$work/create"; then
      cat -- "$work/probe" "$work/create" >&2
      fail "database $2 cannot be reached or created in container $PG_CONTAINER"
    fi
    say "created database $2"
  fi
  { unpack "$1"; echo $? >"$work/status"; } \
    | docker exec -i "$PG_CONTAINER" psql --username="$PG_USER" --no-password --no-psqlrc --dbname="$2" \
        --single-transaction --set=ON_ERROR_STOP=1 --quiet --output=/dev/null
  loaded=$?
  read -r unpacked <"$work/status" || unpacked=unknown
  [ "$unpacked" = 0 ] || fail "reading $1 failed (exit $unpacked); the restore was rolled back"
  [ "$loaded" -eq 0 ] || fail "psql exited $loaded (its error is above); the restore ran in one transaction" \
    "and was rolled back, so $2 is unchanged. To restore beside live data, restore into a new database."
  say "restored ${1##*/} into database $2"
}

restore_paths() {  # $1 backup path, $2 directory to extract into
  mkdir -p -- "$2" || fail "cannot create $2"
  { unpack "$1"; echo $? >"$work/status"; } | tar -C "$2" --extract --preserve-permissions --file=-
  extracted=$?
  read -r unpacked <"$work/status" || unpacked=unknown
  [ "$unpacked" = 0 ] || fail "reading $1 failed (exit $unpacked); files may be partly restored"
  [ "$extracted" -eq 0 ] || fail "tar exited $extracted (its error is above); files may be partly restored"
  say "restored ${1##*/} into $2"
}

do_restore() {
  file=${1:-}
  [ -n "$file" ] || { echo "usage: $0 restore FILE [INTO]   (FILE from: $0 list)" >&2; exit 2; }
  case $file in */*) fail "give the backup's file name as \`$0 list\` shows it, not a path" ;; esac
  printf '%s\n' "$file" | grep -Eq "$FILE_RE" || fail "$file is not a backup of $NAME"
  case $SOURCE:$file in
    postgres:*.sql*|paths:*.tar*) ;;
    *) fail "$file does not come from this backup's $SOURCE source" ;;
  esac
  [ -f "$DEST/$file" ] || fail "$DEST/$file does not exist"
  state=$(checksum_state "$file")
  [ "$state" = ok ] || fail "$DEST/$file: checksum $state; refusing to restore a backup that does not verify"
  trap cleanup EXIT
  trap 'exit 1' HUP INT TERM
  work=$(mktemp -d) || fail "mktemp failed"
  case $SOURCE in
    postgres) restore_postgres "$DEST/$file" "${2:-$PG_DATABASE}" ;;
    paths) restore_paths "$DEST/$file" "${2:-/}" ;;
  esac
}

case ${1:-run} in
  run) do_run ;;
  list) do_list ;;
  restore) shift; do_restore "$@" ;;
  check) do_check ;;
  *) echo "usage: $0 [run | list | restore FILE [INTO] | check]" >&2; exit 2 ;;
esac
"""


def render_backup_script(job: CronJob, config: Mapping[str, Any], settings: Mapping[str, str]) -> str:
    """The script text: header with ``config`` as JSON, ``settings`` as shell
    variables (the names BODY reads), then BODY."""
    assignments = "\n".join(sh_assign(k, v) for k, v in settings.items())
    return job.script_header(USAGE, config) + "\n" + assignments + "\n" + BODY
