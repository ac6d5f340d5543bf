"""The self-contained script a ``retention`` rule installs, and that plan and apply use too.

One selection code path for every mode: ``plan`` runs the *rendered* script's
``select`` verb to list the files over the limits, ``apply`` feeds exactly that
list to its ``delete`` verb, and the cron entry runs the installed copy's ``run``
verb, which is ``select`` piped into ``delete``. Verbs::

    retention-NAME [run]            delete the files over the limits now
    retention-NAME select [NOW]     list them: over<TAB>MTIME<TAB>SIZE<TAB>LIMIT<TAB>PATH
    retention-NAME delete           delete the MTIME<TAB>SIZE<TAB>PATH lines read from stdin

Selection, as of NOW (epoch seconds, default the host's clock): regular files
under PATH (direct children, or the whole tree with ``recursive``) whose name
matches GLOB, newest first by mtime (ties by path). A file is over the limits
when it is older than MAX_AGE, or not among the MAX_COUNT newest, or when it and
all newer files together exceed MAX_TOTAL_SIZE. Files modified after NOW (written
since the plan, or with a future timestamp) are left alone and not counted, so a
re-check after apply judges the same files the plan judged.

Safety: ``find -P`` never follows symbolic links and ``-type f`` skips links,
directories and devices; PATH itself must be a real directory, not a link. Files
with a newline in their name are never selected. ``delete`` re-checks every line
before removing it and skips it, saying why, when the file is no longer a regular
file with the same mtime and size, no longer matches GLOB, or its directory no
longer resolves inside PATH (a component swapped for a symlink).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..common.cronjob import DESCRIBE_JOB_SH, CronJob, sh_assign

USAGE = """\
{script} [run]          delete the files over the limits now
{script} select [NOW]   list the files over the limits (as of NOW, epoch seconds)
{script} delete         delete MTIME<TAB>SIZE<TAB>PATH lines from stdin, if unchanged"""

FUNCTIONS = r"""
set -u
umask 077
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
TAB=$(printf '\t')
NL='
'
work=

note() {  # stderr, and syslog so that scheduled runs leave a trace
  printf 'retention %s: %s\n' "$NAME" "$*" >&2
  logger -t reconciler-retention -- "$NAME: $*" 2>/dev/null || true
}
fail() { note "FAILED: $*"; exit 1; }

do_select() {
  now=${1:-$(date +%s)}
  if [ -L "$ROOT" ]; then
    printf 'problem\t%s is a symbolic link; retention never follows links: name the real directory\n' "$ROOT"
    return 0
  fi
  [ -e "$ROOT" ] || return 0  # nothing there yet: nothing over the limits
  if [ ! -d "$ROOT" ]; then printf 'problem\t%s is not a directory\n' "$ROOT"; return 0; fi
  if [ "$RECURSIVE" = yes ]; then depth=; else depth='-maxdepth 1'; fi
  # shellcheck disable=SC2086  # $depth is empty or two words on purpose
  find -P "$ROOT" -mindepth 1 $depth -type f -name "$GLOB" ! -name "*$NL*" -printf '%T@\t%s\t%p\n' \
    | sort -t "$TAB" -k1,1nr -k3 \
    | awk -F "$TAB" -v now="$now" -v max_age="$MAX_AGE" -v max_count="$MAX_COUNT" -v max_size="$MAX_SIZE" '
      {
        split($1, t, "."); mtime = t[1]
        path = $3; for (i = 4; i <= NF; i++) path = path FS $i
        if (mtime + 0 > now + 0) next
        n++; total += $2
        why = ""
        if (max_age != "" && now - mtime > max_age + 0) why = "max_age"
        else if (max_count != "" && n > max_count + 0) why = "max_count"
        else if (max_size != "" && total > max_size + 0) why = "max_total_size"
        if (why != "") print "over" FS mtime FS $2 FS why FS path
      }'
}

do_delete() {
  if [ -L "$ROOT" ] || [ ! -d "$ROOT" ]; then
    note "$ROOT is not a real directory; nothing deleted"
    return 3
  fi
  real_root=$(realpath -e -- "$ROOT") || return 3
  batch=$(mktemp -d) || return 3
  : >"$batch/candidates"
  last_dir=; last_real=
  # Checks per line with shell builtins only (a fork per file made large deletions slow);
  # realpath runs once per directory.
  while IFS="$TAB" read -r mtime size path; do
    [ -n "$path" ] || continue
    case $path in "$ROOT"/*) ;; *) printf 'skipped\t%s\toutside %s\n' "$path" "$ROOT"; continue ;; esac
    dir=${path%/*}
    base=${path##*/}
    if [ "$RECURSIVE" != yes ] && [ "$dir" != "$ROOT" ]; then
      printf 'skipped\t%s\tnot directly in %s\n' "$path" "$ROOT"; continue
    fi
    # shellcheck disable=SC2254  # GLOB is a pattern on purpose
    case $base in $GLOB) ;; *) printf 'skipped\t%s\tdoes not match %s\n' "$path" "$GLOB"; continue ;; esac
    if [ -L "$path" ] || [ ! -f "$path" ]; then
      printf 'skipped\t%s\tno longer a regular file\n' "$path"; continue
    fi
    if [ "$dir" != "$last_dir" ]; then
      last_dir=$dir
      last_real=$(realpath -e -- "$dir" 2>/dev/null) || last_real=
    fi
    case $last_real in
      '') printf 'skipped\t%s\tits directory is gone\n' "$path"; continue ;;
      "$real_root"|"$real_root"/*) ;;
      *) printf 'skipped\t%s\tits directory now resolves outside %s\n' "$path" "$ROOT"; continue ;;
    esac
    printf '%s\t%s\t%s\n' "$mtime" "$size" "$path" >>"$batch/candidates"
  done
  # One stat for every candidate: a file whose mtime or size changed since it was
  # selected is skipped; the rest are removed by one rm.
  cut -f 3- "$batch/candidates" | xargs -r -d '\n' stat -c "%Y$TAB%s$TAB%n" -- >"$batch/current" 2>/dev/null
  awk -F "$TAB" -v approved="$batch/approved" '
    NR == FNR { p = $3; for (i = 4; i <= NF; i++) p = p FS $i; seen[p] = $1 FS $2; next }
    { p = $3; for (i = 4; i <= NF; i++) p = p FS $i
      if ((p in seen) && seen[p] == $1 FS $2) print p > approved
      else print "skipped" FS p FS "changed since it was selected" }' "$batch/current" "$batch/candidates"
  failed=0
  if [ -s "$batch/approved" ]; then
    xargs -r -d '\n' rm -f -- <"$batch/approved"
    while IFS= read -r path; do
      if [ -e "$path" ] || [ -L "$path" ]; then printf 'failed\t%s\n' "$path"; failed=1
      else printf 'deleted\t%s\n' "$path"; fi
    done <"$batch/approved"
  fi
  rm -rf -- "$batch"
  return $failed
}

do_run() {
  lockdir=/run/lock; [ -d "$lockdir" ] || lockdir=/tmp
  exec 9>"$lockdir/reconciler-retention-$NAME.lock" || fail "cannot open the lock file in $lockdir"
  flock -n 9 || { note "another run is in progress; skipped"; exit 0; }
  trap '[ -z "$work" ] || rm -rf -- "$work"' EXIT
  trap 'exit 1' HUP INT TERM
  work=$(mktemp -d) || fail "mktemp failed"
  do_select >"$work/selected" || fail "selecting files failed"
  problem=$(awk -F "$TAB" '$1 == "problem" { print $2 }' "$work/selected")
  [ -z "$problem" ] || fail "$problem"
  awk -F "$TAB" '$1 == "over" { p = $5; for (i = 6; i <= NF; i++) p = p FS $i; print $2 FS $3 FS p }' \
    "$work/selected" | do_delete >"$work/result"
  status=$?
  deleted=$(grep -c '^deleted' "$work/result")
  skipped=$(grep -c '^skipped' "$work/result")
  note "deleted $deleted file(s), skipped $skipped"
  [ "$status" -eq 0 ] || fail "some files could not be deleted (see above)"
}
"""

DISPATCH = r"""
case ${1:-run} in
  run) do_run ;;
  select) do_select "${2:-}" ;;
  delete) do_delete ;;
  *) echo "usage: $0 [run | select [NOW] | delete]" >&2; exit 2 ;;
esac
"""

BODY = FUNCTIONS + DISPATCH

# The shell variables FUNCTIONS reads, in the order OBSERVE_SH takes them.
VARIABLES = ("NAME", "ROOT", "GLOB", "MAX_AGE", "MAX_COUNT", "MAX_SIZE", "RECURSIVE")

# One command for every rule on a host: what is installed, and for rules in the
# spec the files over the limits, by the same `do_select` the script runs. Rule
# settings come as arguments (not whole scripts, which could outgrow the 128 KiB
# limit of one argument). $1 = NOW (empty: the host's clock); then per rule:
# SELECT (yes/no) and the VARIABLES values.
OBSERVE_SH = DESCRIBE_JOB_SH + FUNCTIONS + r"""
now=$1; shift
[ -n "$now" ] || now=$(date +%s)
printf 'now\t%s\n' "$now"
while [ "$#" -ge 8 ]; do
  selecting=$1; NAME=$2; ROOT=$3; GLOB=$4; MAX_AGE=$5; MAX_COUNT=$6; MAX_SIZE=$7; RECURSIVE=$8; shift 8
  describe_job "$NAME" "/usr/local/lib/reconciler/retention-$NAME" "/etc/cron.d/reconciler-retention-$NAME"
  if [ "$selecting" = yes ]; then
    do_select "$now" || printf 'problem\tselecting files failed (exit %s)\n' "$?"
  fi
done
exit 0
"""


def render_retention_script(job: CronJob, config: Mapping[str, Any], settings: Mapping[str, str]) -> str:
    """The script text: header with ``config`` as JSON, ``settings`` as shell
    variables (the names BODY reads), then BODY."""
    assignments = "\n".join(sh_assign(k, v) for k, v in settings.items())
    return job.script_header(USAGE, config) + "\n" + assignments + "\n" + BODY
