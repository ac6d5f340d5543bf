"""The self-contained backup script a ``backups`` resource installs on its host.

The script is rendered from the spec: a header (ownership, usage, settings as
JSON), the settings as quoted shell assignments, then one constant POSIX sh body
shared by every backup. Verbs::

    backup-NAME [run]               take a backup, then prune by keep.days / keep.count
    backup-NAME list                newest first: MTIME<TAB>SIZE<TAB>ok|mismatch|missing<TAB>FILE
    backup-NAME restore FILE [INTO] restore one backup (INTO: database, or directory for paths)
    backup-NAME check               exit non-zero, saying why, when a tool it needs is missing
    backup-NAME offsite [FILE]      copy FILE (default: the newest good backup) to every offsite target
    backup-NAME verify [FILE]       restore drill: restore FILE (default: the newest) somewhere
                                    throwaway, check it, remove it; exit 1 when it fails
    backup-NAME status              the last backup, offsite copy and drill (STATUS_DIR/NAME.*)

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

Offsite copies (``run`` after a good backup, or ``offsite``), per target:

* Encrypted with ``age`` to the target's recipients first when it has any (the
  copy is ``FILE.age``; the identity never is on this host). Staged in a dot
  directory inside DEST, removed afterwards.
* Sent with rsync over SSH with this job's own key (``KEY_FILE``), host key pinned
  (``host_key``) or trusted on first use into this job's own known_hosts file. The
  copy's ``.sha256`` (of the bytes sent) goes along.
* Verified on the target: a second, dry rsync run with ``--checksum`` makes the
  target recompute the stored copy's checksum and compare it with ours; any
  difference is a failure.
* Pruned by the target's ``keep`` (by the UTC time in the file names; the copy just
  sent and the newest copy are never pruned). Listing and deleting go through rsync
  too (a dry ``--delete`` run lists, a filtered one deletes), so the target's key
  can be confined to ``rrsync -wo DIR``: write-only, in one directory.
* A failure is reported (``offsite copy to T FAILED: ...``), recorded in the status
  file and makes the run exit 3; the local backup is never touched by it.

Status files (``STATUS_DIR/NAME.backup``, ``NAME.offsite-TARGET``, ``NAME.drill``):
TAB-separated ``key value`` lines ``result`` (ok | failed), ``time`` (epoch),
``file`` and ``message``, replaced atomically after each attempt. The provider
observes them (``last_backup``, ``last_offsite``, ``last_drill`` in its state).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..common.cronjob import CronJob, sh_assign

USAGE = """\
{script} [run]                 take a backup now, then prune old ones by `keep`
{script} list                  newest first: mtime, size, checksum status, file
{script} restore FILE [INTO]   restore one backup (INTO: a database, or a directory)
{script} check                 check that the tools it needs are installed
{script} offsite [FILE]        copy a backup (default: the newest) to the offsite targets
{script} verify [FILE]         restore drill on a throwaway copy (default: the newest backup)
{script} status                the last backup, offsite copy and drill"""

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
stage=
drill=
recording=

say() { printf 'backup %s: %s\n' "$NAME" "$*"; }
note() {  # stderr, and syslog so that scheduled runs leave a trace
  printf 'backup %s: %s\n' "$NAME" "$*" >&2
  logger -t reconciler-backup -- "$NAME: $*" 2>/dev/null || true
}
fail() {
  note "FAILED: $*"
  [ -z "$recording" ] || record "$recording" failed "${file:-}" "$*"
  exit 1
}
cleanup() {
  [ -z "${watchdog:-}" ] || kill "$watchdog" 2>/dev/null || true
  [ -z "$drill" ] || docker rm -f -v "$drill" >/dev/null 2>&1 || true
  [ -z "$stage" ] || rm -rf -- "$stage"
  [ -z "$work" ] || rm -rf -- "$work"
  [ -z "${tmp:-}" ] || rm -f -- "$tmp" "$tmp.sha256"
}

# record WHAT RESULT FILE MESSAGE: STATUS_DIR/NAME.WHAT, replaced atomically.
record() {
  mkdir -p -- "$STATUS_DIR" 2>/dev/null || return 0
  rtmp=$STATUS_DIR/.$NAME.$1.tmp
  { printf 'result\t%s\ntime\t%s\nfile\t%s\n' "$2" "$(date +%s)" "$3"
    printf 'message\t%s\n' "$(printf '%s' "$4" | tr '\t\r\n' '   ')"; } >"$rtmp" 2>/dev/null \
    && mv -f -- "$rtmp" "$STATUS_DIR/$NAME.$1" 2>/dev/null || rm -f -- "$rtmp"
}

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
  if [ -n "$OFFSITE" ]; then
    need rsync "install the rsync package"
    need ssh "install the openssh-client package"
    case $OFFSITE in *"|age1"*) need age "install the age package" ;; esac
  fi
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
  recording=backup
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
  written="$(stat -c %s -- "$DEST/$file") bytes, sha256 $sum"
  say "wrote $DEST/$file ($written)"
  logger -t reconciler-backup -- "$NAME: wrote $DEST/$file" 2>/dev/null || true
  prune "$file"
  record backup ok "$file" "$written"
  recording=
  [ -z "$OFFSITE" ] || offsite_all "$file" || exit 3
}

# ------------------------------------------------------------------ offsite copies

# Runs rsync over ssh to the current target (t_* variables) with this job's key.
rsync_t() {
  timeout "$OFFSITE_TIMEOUT" rsync --timeout=300 -e "ssh -i $KEY_FILE -p $t_port -o BatchMode=yes \
-o IdentitiesOnly=yes -o UserKnownHostsFile=$t_known -o StrictHostKeyChecking=$t_strict \
-o ConnectTimeout=20 -o ServerAliveInterval=15 -o ServerAliveCountMax=4 -o LogLevel=ERROR" "$@" </dev/null
}

# Names in the target's directory that belong to this job (copies and their checksums).
COPY_RE="^$NAME-[0-9]{8}T[0-9]{6}Z\.(sql|tar)(\.gz|\.zst)?(\.age)?(\.sha256)?\$"

offsite_list() {  # copies on the target, one name per line, via a dry --delete run
  mkdir -p -- "$work/empty" || return 1
  rsync_t --dry-run --recursive --delete --itemize-changes --include="/$NAME-*" --exclude='*' \
    -- "$work/empty/" "$t_user@$t_addr:" >"$work/remote" || return 1
  sed -n 's/^\*deleting  *//p' "$work/remote" | grep -E "$COPY_RE" || true
}

name_epoch() {  # NAME-YYYYmmddTHHMMSSZ... -> epoch seconds
  ts=${1#"$NAME"-}; ts=${ts%%Z*}
  date -u -d "$(printf '%s' "$ts" | sed 's/^\(....\)\(..\)\(..\)T\(..\)\(..\)\(..\)$/\1-\2-\3 \4:\5:\6/')" +%s
}

offsite_prune() {  # $1: the copy just sent (never pruned)
  [ -n "$t_days$t_count" ] || return 0
  offsite_list >"$work/copies" || { t_err="cannot list the copies on the target"; return 1; }
  now=$(date +%s); n=0; newest=; set --
  for copy in $(grep -v "[.]sha256\$" "$work/copies" | sort -r); do
    n=$((n + 1))
    if [ -z "$newest" ]; then newest=$copy; continue; fi
    [ "$copy" != "$t_sent" ] || continue
    over=
    if [ -n "$t_count" ] && [ "$n" -gt "$t_count" ]; then over=1; fi
    if [ -n "$t_days" ] && [ $((now - $(name_epoch "$copy"))) -ge $((t_days * 86400)) ]; then over=1; fi
    [ -z "$over" ] || set -- "$@" "--include=/$copy" "--include=/$copy.sha256"
  done
  # Checksums whose copy is gone go too.
  for sum in $(grep "[.]sha256\$" "$work/copies"); do
    grep -qxF -- "${sum%.sha256}" "$work/copies" || set -- "$@" "--include=/$sum"
  done
  [ "$#" -gt 0 ] || return 0
  rsync_t --recursive --delete "$@" --exclude='*' -- "$work/empty/" "$t_user@$t_addr:" >/dev/null \
    || { t_err="pruning old copies failed"; return 1; }
  say "offsite $t_name: pruned old copies (keep:${t_days:+ $t_days days}${t_count:+ $t_count copies})"
}

offsite_one() {  # $1: backup file in DEST; the target in t_* variables
  t_err=; f=$1
  t_known=$STATUS_DIR/$NAME-offsite-$t_name.known_hosts
  if [ -n "$t_hostkey" ]; then
    t_strict=yes
    case $t_port in 22) hk=$t_addr ;; *) hk="[$t_addr]:$t_port" ;; esac
    printf '%s %s\n' "$hk" "$t_hostkey" >"$t_known" || { t_err="cannot write $t_known"; return 1; }
  else
    t_strict=accept-new
  fi
  src=$DEST/$f; t_sent=$f; sum_file=$DEST/$f.sha256
  if [ -n "$t_rcpt" ]; then
    set --
    for r in $t_rcpt; do set -- "$@" -r "$r"; done
    t_sent=$f.age
    age "$@" -o "$stage/$t_sent" -- "$DEST/$f" 2>"$work/age" \
      || { t_err="age encryption failed: $(head -c 300 "$work/age")"; return 1; }
    src=$stage/$t_sent; sum_file=$stage/$t_sent.sha256
    printf '%s  %s\n' "$(sha_of "$src")" "$t_sent" >"$sum_file" || { t_err="cannot checksum"; return 1; }
    touch -r "$DEST/$f" -- "$src" "$sum_file"
  fi
  rsync_t --times -- "$src" "$sum_file" "$t_user@$t_addr:" 2>"$work/rsync" \
    || { t_err="rsync failed: $(tail -c 400 "$work/rsync" | tr '\r\n' '  ')"; return 1; }
  # The target recomputes the stored copy's checksum; any itemized line is a difference.
  rsync_t --dry-run --checksum --times --itemize-changes -- "$src" "$sum_file" "$t_user@$t_addr:" \
    >"$work/check" 2>"$work/rsync" \
    || { t_err="checking the copy failed: $(tail -c 400 "$work/rsync" | tr '\r\n' '  ')"; return 1; }
  [ ! -s "$work/check" ] || { t_err="the copy on the target does not match ($(head -c 200 "$work/check"))"; \
    return 1; }
  say "offsite $t_name: copied and verified $t_sent"
  offsite_prune "$t_sent"
}

offsite_all() {  # $1: the backup to copy; exit status 1 when any target failed
  [ -n "$OFFSITE" ] || { say "no offsite targets"; return 0; }
  [ -f "$KEY_FILE" ] || { note "offsite: the key $KEY_FILE is missing; run \`reconcile apply\`"; return 1; }
  [ -n "$work" ] || { trap cleanup EXIT; trap 'exit 1' HUP INT TERM; work=$(mktemp -d) || return 1; }
  mkdir -p -- "$STATUS_DIR" || return 1
  failed=0
  # '|'-separated: a TAB is IFS white space, where empty fields (no keep.days) would collapse.
  while IFS='|' read -r t_name t_addr t_port t_user t_days t_count t_rcpt t_hostkey; do
    [ -n "$t_name" ] || continue
    stage=$(mktemp -d "$DEST/.offsite.XXXXXX") || { failed=1; continue; }
    if offsite_one "$1"; then
      record "offsite-$t_name" ok "$t_sent" "copied to $t_user@$t_addr and verified"
    else
      note "offsite copy to $t_name ($t_user@$t_addr) FAILED: $t_err; the backup $DEST/$1 stays here"
      record "offsite-$t_name" failed "$1" "$t_err"
      failed=1
    fi
    rm -rf -- "$stage"; stage=
  done <<EOF_TARGETS
$OFFSITE
EOF_TARGETS
  return $failed
}

do_offsite() {
  do_check || fail "missing tools (see above)"
  lockdir=/run/lock; [ -d "$lockdir" ] || lockdir=$DEST
  exec 9>"$lockdir/reconciler-backup-$NAME.lock" || fail "cannot open the lock file in $lockdir"
  flock -w 600 9 || fail "a run of this backup holds the lock"
  file=${1:-}
  if [ -z "$file" ]; then
    file=$(do_list | awk -F "$TAB" '$3 == "ok" { print $4; exit }')
    [ -n "$file" ] || fail "there is no good backup to copy"
  fi
  valid_backup_name "$file"
  [ "$(checksum_state "$file")" = ok ] || fail "$DEST/$file does not verify; not copying it"
  offsite_all "$file" || exit 3
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

valid_backup_name() {
  case $1 in */*) fail "give the backup's file name as \`$0 list\` shows it, not a path" ;; esac
  printf '%s\n' "$1" | grep -Eq "$FILE_RE" || fail "$1 is not a backup of $NAME"
  case $SOURCE:$1 in
    postgres:*.sql*|paths:*.tar*) ;;
    *) fail "$1 does not come from this backup's $SOURCE source" ;;
  esac
  [ -f "$DEST/$1" ] || fail "$DEST/$1 does not exist"
}

do_restore() {
  file=${1:-}
  [ -n "$file" ] || { echo "usage: $0 restore FILE [INTO]   (FILE from: $0 list)" >&2; exit 2; }
  valid_backup_name "$file"
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

# ------------------------------------------------------------------ restore drill

drill_pg() {  # psql in the drill container; SQL on stdin or -c
  docker exec -i "$drill" psql --username="$PG_USER" --no-password --no-psqlrc --dbname=drill_restore \
    --set=ON_ERROR_STOP=1 "$@"
}

verify_postgres() {  # $1 backup path
  image=$VERIFY_IMAGE
  if [ -z "$image" ]; then
    image=$(docker inspect --format '{{.Config.Image}}' "$PG_CONTAINER" 2>/dev/null) \
      || fail "cannot tell the image of container $PG_CONTAINER (not on this host?); set verify.image"
  fi
  docker run -d --name "$drill" --label "io.reconciler.drill=$NAME" --network none \
    -e POSTGRES_HOST_AUTH_METHOD=trust -e "POSTGRES_USER=$PG_USER" -e POSTGRES_DB=drill_restore \
    "$image" >/dev/null 2>"$work/run" || { fail "cannot start a $image container: $(cat "$work/run")"; }
  # TCP answers only once initialisation is over (the init server listens on the socket alone).
  waited=0
  until docker exec "$drill" pg_isready -q -h 127.0.0.1 -U "$PG_USER" -d drill_restore 2>/dev/null; do
    waited=$((waited + 1))
    [ "$waited" -lt 180 ] || fail "the throwaway PostgreSQL did not accept connections within 180 s"
    sleep 1
  done
  { unpack "$1"; echo $? >"$work/status"; } | drill_pg --single-transaction --quiet --output=/dev/null \
    2>"$work/restore"
  loaded=$?
  read -r unpacked <"$work/status" || unpacked=unknown
  [ "$unpacked" = 0 ] || fail "reading ${1##*/} failed (exit $unpacked)"
  [ "$loaded" -eq 0 ] || fail "restoring ${1##*/} failed: $(head -c 400 "$work/restore")"
  [ "$(drill_pg -tAc 'select 1' 2>/dev/null)" = 1 ] || fail "the restored database does not answer queries"
  report="restored into a throwaway $image container"
  for t in $VERIFY_TABLES; do
    case $t in *[!a-z0-9_.]*|.*|*.) fail "invalid table name $t" ;; esac
    exists=$(drill_pg -tAc "select to_regclass('$t') is not null" 2>"$work/q") \
      || fail "checking table $t failed: $(head -c 300 "$work/q")"
    [ "$exists" = t ] || fail "table $t is missing from the restored ${1##*/}"
    rows=$(drill_pg -tAc "select count(*) from $t" 2>"$work/q") \
      || fail "counting rows of $t failed: $(head -c 300 "$work/q")"
    min=$(printf '%s\n' "$VERIFY_MIN_ROWS" | awk -F "$TAB" -v t="$t" '$1 == t { print $2 }')
    if [ -n "$min" ] && [ "$rows" -lt "$min" ]; then
      fail "table $t has $rows rows in ${1##*/}, fewer than the $min the spec expects"
    fi
    report="$report; $t: $rows rows${min:+ (min $min)}"
  done
}

verify_paths() {  # $1 backup path
  stage=$(mktemp -d /var/tmp/reconciler-drill-"$NAME".XXXXXX) || fail "mktemp failed"
  { unpack "$1"; echo $? >"$work/status"; } | tar -C "$stage" --extract --file=- 2>"$work/tar"
  extracted=$?
  read -r unpacked <"$work/status" || unpacked=unknown
  [ "$unpacked" = 0 ] || fail "reading ${1##*/} failed (exit $unpacked)"
  [ "$extracted" -eq 0 ] || fail "extracting ${1##*/} failed: $(head -c 300 "$work/tar")"
  count=$(find "$stage" -mindepth 1 | wc -l)
  report="extracted $count entries"
  printf '%s\n' "$VERIFY_PATHS" | while IFS= read -r p; do
    [ -n "$p" ] || continue
    [ -e "$stage/$p" ] || [ -L "$stage/$p" ] || { echo "$p" >"$work/missing"; break; }
  done
  [ ! -s "$work/missing" ] || fail "/$(cat "$work/missing") is missing from ${1##*/}"
}

do_verify() {
  recording=drill
  trap cleanup EXIT
  trap 'exit 1' HUP INT
  work=$(mktemp -d) || fail "mktemp failed"
  [ "$SOURCE" != postgres ] || drill=reconciler-drill-$NAME-$$
  # The deadline: remove the throwaway container (which ends any docker exec into it), then stop.
  trap 'fail "the drill did not finish within $VERIFY_TIMEOUT s"' TERM
  main=$$
  ( sleep "$VERIFY_TIMEOUT"
    [ -z "$drill" ] || docker rm -f -v "$drill" >/dev/null 2>&1
    kill -TERM "$main" 2>/dev/null ) </dev/null >/dev/null 2>&1 &
  watchdog=$!
  file=${1:-}
  if [ -z "$file" ]; then
    file=$(backups | head -n 1 | cut -f 3)
    [ -n "$file" ] || fail "there is no backup of $NAME in $DEST to verify"
  fi
  valid_backup_name "$file"
  state=$(checksum_state "$file")
  [ "$state" = ok ] || fail "$DEST/$file: checksum $state; the backup is damaged or incomplete"
  verify_packed "$DEST/$file" "$file" || fail "$DEST/$file does not decompress"
  case $SOURCE in
    postgres) verify_postgres "$DEST/$file" ;;
    paths) verify_paths "$DEST/$file" ;;
  esac
  kill "$watchdog" 2>/dev/null || true
  record drill ok "$file" "$report"
  say "drill ok: $file: $report"
}

do_status() {
  for f in "$STATUS_DIR/$NAME".*; do
    [ -f "$f" ] || continue
    what=${f##*/}; what=${what#"$NAME".}
    case $what in backup|drill|offsite-*) ;; *) continue ;; esac
    sed "s/^/$what$TAB/" "$f"
  done
}

case ${1:-run} in
  run) do_run ;;
  list) do_list ;;
  restore) shift; do_restore "$@" ;;
  check) do_check ;;
  offsite) shift; do_offsite "$@" ;;
  verify) shift; do_verify "$@" ;;
  status) do_status ;;
  *) echo "usage: $0 [run | list | restore FILE [INTO] | check | offsite [FILE] | verify [FILE] | status]" >&2
     exit 2 ;;
esac
"""


def render_backup_script(job: CronJob, config: Mapping[str, Any], settings: Mapping[str, str]) -> str:
    """The script text: header with ``config`` as JSON, ``settings`` as shell
    variables (the names BODY reads), then BODY."""
    assignments = "\n".join(sh_assign(k, v) for k, v in settings.items())
    return job.script_header(USAGE, config) + "\n" + assignments + "\n" + BODY
