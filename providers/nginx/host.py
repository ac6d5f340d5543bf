"""What the nginx provider runs on a host: constant shell scripts (data only as
positional arguments) and the parser of the observation's output.

Layout: Debian's ``sites-available/NAME`` + ``sites-enabled/NAME`` symlink when
``/etc/nginx/sites-enabled`` exists, else ``conf.d/NAME.conf`` (nginx.org packages,
other distributions).

"Reload pending" marks: ``/run/reconciler/nginx-pending/NAME`` is touched before a
site file changes and cleared once nginx has loaded the files on disk (a reload
that started new workers, or a start). A mark that survives means the file on
disk is not what nginx serves (the reload failed or the run died half-way), so
the next plan shows it. ``/run`` is emptied at boot, when nginx starts from disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .render import HEADER_PREFIX, SELF_SIGNED_DIR

PENDING_DIR = "/run/reconciler/nginx-pending"

# Shared shell prelude: where things are, for a layout and a site name.
_PRELUDE = r"""
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
site_paths() {  # $1 layout, $2 name -> $file, $link ("" in the conf.d layout)
  if [ "$1" = debian ]; then file=/etc/nginx/sites-available/$2; link=/etc/nginx/sites-enabled/$2
  else file=/etc/nginx/conf.d/$2.conf; link=; fi
}
"""

_HEADER_CASE = f'"{HEADER_PREFIX}"*'

# Forks are what cost time on a host, so nothing here forks per site: one sha256sum
# and one realpath for all site files, one awk over every enabled file.
OBSERVE = _PRELUDE + r"""
if command -v nginx >/dev/null 2>&1; then echo "installed	yes"; else echo "installed	no"; fi
if [ -d /etc/nginx/sites-enabled ]; then layout=debian; else layout=confd; fi
echo "layout	$layout"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  service=$(systemctl is-active nginx 2>/dev/null) || true
elif [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then service=active
else service=inactive; fi
echo "service	${service:-unknown}"
pos=0
for arg do  # the arguments are triples: name, certificate, key ("" when not self-signed)
  case $((pos % 3)) in
    0) name=$arg ;;
    1) crt=$arg ;;
    2) key=$arg
       site_paths "$layout" "$name"
       exists=0; owned=0; link_kind=none
       if [ -f "$file" ]; then
         exists=1; first=; IFS= read -r first < "$file" || true
         case "$first" in HEADER_CASE) owned=1 ;; esac
       fi
       if [ -z "$link" ]; then link_kind=conf.d
       elif [ -L "$link" ]; then link_kind=symlink
       elif [ -e "$link" ]; then link_kind=file; fi
       keys=-
       if [ -n "$crt" ]; then
         if [ -s "$crt" ] && [ -s "$key" ]; then keys=present
         elif [ -e "$crt" ] || [ -e "$key" ]; then keys=incomplete
         else keys=missing; fi
       fi
       pending=0; [ -e "PENDING_DIR/$name" ] && pending=1
       printf 'site\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$exists" "$owned" "$link_kind" "$keys" "$pending" ;;
  esac
  pos=$((pos + 1))
done
site_files() {  # $1 = file | link, then the triples: the paths of every site that has one
  what=$1; shift; pos=0
  for arg do
    if [ $((pos % 3)) = 0 ]; then
      site_paths "$layout" "$arg"
      if [ "$what" = file ] && [ -f "$file" ]; then printf '%s\0' "$file"; fi
      if [ "$what" = link ] && [ -n "$link" ] && [ -L "$link" ]; then printf '%s\0%s\0' "$link" "$file"; fi
    fi
    pos=$((pos + 1))
  done
}
echo "--sha256--"
site_files file "$@" | xargs -0r sha256sum --
echo "--links--"  # pairs of lines: where a sites-enabled link leads, where the site file is
site_files link "$@" | xargs -0r realpath -m --
echo "--enabled--"
set --
for f in /etc/nginx/sites-enabled/* /etc/nginx/conf.d/*.conf; do [ -f "$f" ] && set -- "$@" "$f"; done
[ $# = 0 ] || awk '
  function report() { if (server) printf "enabled\t%s\t%d\t%d\n", name, owned, default_server }
  FNR == 1 { if (name != "") report(); name = FILENAME; owned = (index($0, HEADER) == 1)
             server = 0; default_server = 0 }
  /^[[:space:]]*server[[:space:]]*[{]?[[:space:]]*$/ { server = 1 }
  /^[^#]*listen[^;#]*default_server/ { default_server = 1 }
  END { if (name != "") report() }' HEADER="HEADER_TEXT" "$@"
exit 0
"""
# Exit codes of INSTALL / REMOVE that mean something to the provider.
REFUSED = 10          # nginx -t refused the candidate; the previous state is back
ALREADY_BROKEN = 11   # nginx -t fails even without the candidate
NOT_OURS = 12         # something the reconciler did not make is in the way

# Why test in place instead of in a scratch copy of /etc/nginx: Debian's nginx.conf
# and snippets include files by absolute /etc/nginx/... paths, so a copy would have to
# have every include rewritten and would test a different configuration from the one a
# reload loads. nginx reads its files only on reload or start, which this run controls,
# so a refused candidate is on disk only for the duration of `nginx -t` and never
# loaded. The previous file is kept as a hard link and put back with an atomic rename.
INSTALL = _PRELUDE + r"""
set -eu
layout=$1; name=$2; mode=$3
site_paths "$layout" "$name"
dir=${file%/*}; prev=$dir/.reconciler-previous.$name; mark=PENDING_DIR/$name
if [ -n "$link" ] && [ -e "$link" ] && [ ! -L "$link" ]; then
  echo "$link is a regular file, not a link to $file; the reconciler will not replace it (move it away)" >&2
  exit NOT_OURS
fi
mkdir -p -- "$dir" PENDING_DIR
tmp=$(mktemp -- "$dir/.reconciler.XXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
chmod "$mode" "$tmp"
cat > "$tmp"
rm -f -- "$prev"
had_file=0; if [ -e "$file" ]; then ln -- "$file" "$prev"; had_file=1; fi
old_target=; if [ -n "$link" ] && [ -L "$link" ]; then old_target=$(readlink -- "$link"); fi
had_mark=0; [ -e "$mark" ] && had_mark=1
touch -- "$mark"
mv -f -- "$tmp" "$file"
[ -z "$link" ] || ln -sfn -- "$file" "$link"
if result=$(nginx -t 2>&1); then rm -f -- "$prev"; exit 0; fi
if [ $had_file = 1 ]; then mv -f -- "$prev" "$file"; else rm -f -- "$file"; fi
if [ -n "$link" ]; then
  if [ -n "$old_target" ]; then ln -sfn -- "$old_target" "$link"; else rm -f -- "$link"; fi
fi
[ $had_mark = 1 ] || rm -f -- "$mark"
printf '%s\n' "$result" >&2
if nginx -t >/dev/null 2>&1; then exit REFUSED; else exit ALREADY_BROKEN; fi
"""

REMOVE = _PRELUDE + r"""
set -eu
layout=$1; name=$2
site_paths "$layout" "$name"
dir=${file%/*}; prev=$dir/.reconciler-previous.$name
if [ -e "$file" ]; then
  first=; IFS= read -r first < "$file" || true
  case "$first" in
    HEADER_CASE) ;;
    *) echo "$file no longer carries the reconciler's header (it was replaced by hand); left in place" >&2
       exit NOT_OURS ;;
  esac
fi
old_target=
if [ -n "$link" ] && [ -L "$link" ] && [ "$(readlink -f -- "$link")" = "$(readlink -f -- "$file")" ]; then
  old_target=$(readlink -- "$link"); rm -f -- "$link"
fi
rm -f -- "$prev"
had_file=0; if [ -e "$file" ]; then ln -- "$file" "$prev"; rm -f -- "$file"; had_file=1; fi
if result=$(nginx -t 2>&1); then
  rm -f -- "$prev" "SELF_SIGNED_DIR/$name.crt" "SELF_SIGNED_DIR/$name.key" "PENDING_DIR/$name"
  exit 0
fi
[ $had_file = 0 ] || mv -f -- "$prev" "$file"
[ -z "$old_target" ] || ln -sfn -- "$old_target" "$link"
printf '%s\n' "$result" >&2
if nginx -t >/dev/null 2>&1; then exit REFUSED; else exit ALREADY_BROKEN; fi
"""

# A self-signed pair is made only when neither file exists: one file alone may be
# someone's real key, which must not be overwritten. The key is written 0600 and
# both files appear by rename, so nginx never sees a half-written pair.
GENERATE_SELF_SIGNED = r"""
set -eu
crt=$1; key=$2; cn=$3; san=$4; replace=$5
if [ "$replace" = 1 ]; then rm -f -- "$crt" "$key"; fi
if [ -s "$crt" ] && [ -s "$key" ]; then exit 0; fi
if [ -e "$crt" ] || [ -e "$key" ]; then
  echo "only one of $crt and $key exists; the reconciler will not overwrite it with a new key pair" >&2
  exit NOT_OURS
fi
mkdir -p -- "${crt%/*}" "${key%/*}"
umask 077
tkey=$(mktemp -- "${key%/*}/.reconciler-key.XXXXXXXX")
tcrt=$(mktemp -- "${crt%/*}/.reconciler-crt.XXXXXXXX")
trap 'rm -f -- "$tkey" "$tcrt"' EXIT
if [ -n "$san" ]; then set -- -addext "subjectAltName=$san"; else set --; fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
  -subj "/CN=$cn" "$@" -keyout "$tkey" -out "$tcrt" 2>"$tcrt.err" \
  || { cat -- "$tcrt.err" >&2; rm -f -- "$tcrt.err"; exit 1; }
rm -f -- "$tcrt.err"
chmod 0600 "$tkey"; chmod 0644 "$tcrt"
mv -f -- "$tkey" "$key"; mv -f -- "$tcrt" "$crt"
trap - EXIT
"""

# Reload (or start) nginx once per run and wait until it has really taken the new
# configuration: `systemctl reload` returns as soon as the signal is sent, and a
# master that fails to load the new files (a port already in use, say) keeps its
# old workers and only writes to error.log. New worker pids are the proof.
RELOAD = _PRELUDE + r"""
set -u
systemd=0; [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && systemd=1
master() {
  if [ $systemd = 1 ]; then systemctl show -p MainPID --value nginx 2>/dev/null
  else cat /run/nginx.pid 2>/dev/null; fi
}
workers() {
  m=$(master); [ -n "$m" ] && [ "$m" != 0 ] || return 0
  cat "/proc/$m/task/$m/children" 2>/dev/null || ps -o pid= --ppid "$m" 2>/dev/null || true
}
running() {
  if [ $systemd = 1 ]; then systemctl is-active --quiet nginx
  else [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; fi
}
if ! running; then
  if [ $systemd = 1 ]; then out=$(systemctl start nginx 2>&1); else out=$(nginx 2>&1); fi || {
    printf 'nginx did not start: %s\n' "$out" >&2
    [ $systemd = 0 ] || journalctl -u nginx -n 8 --no-pager -o cat >&2 2>/dev/null
    exit 1; }
  rm -f -- PENDING_DIR/*
  echo started; exit 0
fi
before=" $(workers | tr '\n' ' ') "
log=/var/log/nginx/error.log
log_size=$(stat -c %s "$log" 2>/dev/null || echo 0)
new_errors() {  # what the master logged since the reload, without timestamps and pids
  tail -c +$((log_size + 1)) "$log" 2>/dev/null | grep -F '[emerg]' \
    | sed -E 's/^[0-9/]+ [0-9:]+ (\[[a-z]+\]) [0-9]+#[0-9]+: /\1 /' | uniq
}
if [ $systemd = 1 ]; then out=$(systemctl reload nginx 2>&1); else out=$(nginx -s reload 2>&1); fi || {
  printf 'nginx reload failed: %s\n' "$out" >&2
  [ $systemd = 0 ] || journalctl -u nginx -n 8 --no-pager -o cat >&2 2>/dev/null
  exit 1; }
i=0
while [ $i -lt 150 ]; do
  for pid in $(workers); do
    case "$before" in *" $pid "*) ;; *) rm -f -- PENDING_DIR/*; echo reloaded; exit 0 ;; esac
  done
  # The master logs [emerg] and keeps the old configuration; a failed bind() is retried
  # for a few seconds and ends with "still could not bind()".
  last=$(new_errors | tail -n 1)
  case "$last" in ""|*"bind() to "*" failed"*) ;; *) break ;; esac
  sleep 0.1; i=$((i + 1))
done
echo "nginx did not take the new configuration and still serves the old one:" >&2
errors=$(new_errors | tail -n 5)
printf '%s\n' "${errors:-(no new [emerg] lines in $log; no new worker processes within 15 s)}" >&2
exit 1
"""


def _fill(script: str) -> str:
    return (script.replace("HEADER_CASE", _HEADER_CASE).replace("HEADER_TEXT", HEADER_PREFIX)
            .replace("PENDING_DIR", PENDING_DIR)
            .replace("SELF_SIGNED_DIR", SELF_SIGNED_DIR).replace("NOT_OURS", str(NOT_OURS))
            .replace("ALREADY_BROKEN", str(ALREADY_BROKEN)).replace("REFUSED", str(REFUSED)))


OBSERVE = _fill(OBSERVE)
INSTALL = _fill(INSTALL)
REMOVE = _fill(REMOVE)
GENERATE_SELF_SIGNED = _fill(GENERATE_SELF_SIGNED)
RELOAD = _fill(RELOAD)


# ---------------------------------------------------------------------------------------
# Parsing the observation

class Layout(StrEnum):
    DEBIAN = "debian"   # sites-available + sites-enabled symlink
    CONF_D = "confd"    # conf.d/NAME.conf


@dataclass(frozen=True)
class SiteFacts:
    """One site's files as the host has them."""

    name: str
    sha256: str | None      # None: no site file
    owned: bool             # carries the reconciler's header
    enabled: bool           # linked from sites-enabled (or in conf.d)
    link_kind: str          # symlink | file | none | conf.d
    key_pair: str | None    # present | missing | incomplete; None when not asked
    reload_pending: bool


@dataclass(frozen=True)
class EnabledFile:
    """A file nginx loads as a site (sites-enabled/* or conf.d/*.conf with a server block)."""

    path: str
    owned: bool
    default_server: bool


@dataclass
class NginxFacts:
    installed: bool = False
    layout: Layout = Layout.DEBIAN
    service: str = "unknown"   # systemctl is-active's word: active, inactive, failed, ...
    sites: dict[str, SiteFacts] = field(default_factory=dict)
    enabled_files: list[EnabledFile] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.service in ("active", "reloading")


def parse_observation(text: str) -> NginxFacts:
    """Parse OBSERVE's output: tab-separated tagged lines, then the ``sha256sum`` and
    ``realpath`` sections. Unknown or malformed lines are skipped."""
    facts = NginxFacts()
    head, _, rest = text.partition("--sha256--\n")
    sums_text, _, rest = rest.partition("--links--\n")
    links_text, _, enabled_text = rest.partition("--enabled--\n")
    sums: dict[str, str] = {}
    for line in sums_text.splitlines():
        digest, sep, path = line.partition("  ")
        if sep and len(digest) == 64:
            sums[path] = "sha256:" + digest
    resolved = links_text.splitlines()
    # realpath printed two lines per linked site, in argument order: where the link
    # leads and the site file's own canonical path. Equal means correctly linked.
    pairs = iter(zip(resolved[0::2], resolved[1::2], strict=False))
    rows: list[list[str]] = []
    for line in (head + enabled_text).splitlines():
        parts = line.split("\t")
        tag = parts[0]
        if tag == "installed" and len(parts) == 2:
            facts.installed = parts[1] == "yes"
        elif tag == "layout" and len(parts) == 2:
            facts.layout = Layout(parts[1]) if parts[1] in Layout.__members__.values() else Layout.DEBIAN
        elif tag == "service" and len(parts) == 2:
            facts.service = parts[1]
        elif tag == "site" and len(parts) == 7:
            rows.append(parts)
        elif tag == "enabled" and len(parts) == 4:
            facts.enabled_files.append(EnabledFile(parts[1], parts[2] == "1", parts[3] == "1"))
    for _, name, exists, owned, link_kind, keys, pending in rows:
        linked = False
        if link_kind == "symlink":
            target, canonical = next(pairs, ("", "-"))
            linked = target == canonical
        facts.sites[name] = SiteFacts(
            name=name, sha256=sums.get(site_path(facts.layout, name)) if exists == "1" else None,
            owned=owned == "1", enabled=exists == "1" and (link_kind == "conf.d" or linked),
            link_kind=link_kind, key_pair=None if keys == "-" else keys, reload_pending=pending == "1")
    return facts


def site_path(layout: Layout, name: str) -> str:
    if layout is Layout.DEBIAN:
        return f"/etc/nginx/sites-available/{name}"
    return f"/etc/nginx/conf.d/{name}.conf"
