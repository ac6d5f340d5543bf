"""Shell run on the host for apt repositories (constant scripts, data as arguments)."""

from __future__ import annotations

from ..packages.apt import APT_ENV
from .render import HEADER, SOURCES_DIR

NOT_OURS = 5
REFUSED_BY_APT = 3
BREAKS_CONFIG = 4

# Every NAME.sources asked about ("@repo NAME SHA256 MANAGED") and every other
# source file ("@other PATH"), in one command.
OBSERVE = f"""
export LC_ALL=C
for name in "$@"; do
  f={SOURCES_DIR}/$name.sources
  [ -f "$f" ] || continue
  sum=$(sha256sum < "$f" | cut -d' ' -f1)
  if head -n1 "$f" | grep -q '^{HEADER}'; then m=1; else m=0; fi
  echo "@repo $name $sum $m"
done
for f in /etc/apt/sources.list {SOURCES_DIR}/*.list {SOURCES_DIR}/*.sources; do
  [ -f "$f" ] || continue
  head -n1 "$f" | grep -q '^{HEADER}' || echo "@other $f"
done
exit 0
"""

# $1 name, $2 lock timeout (s); the new file on stdin. The source is fetched and
# verified on its own *before* it goes live (a broken or wrongly signed repository
# would otherwise make every later apt-get update on the host fail), and the whole
# configuration must still parse afterwards (apt refuses, for instance, two files
# naming one URI with different Signed-By); otherwise the previous file is restored.
INSTALL = f"""
set -eu
{APT_ENV}
name=$1; lock=$2
target={SOURCES_DIR}/$name.sources
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/parts"
cat > "$work/parts/$name.sources"
chmod 0644 "$work/parts/$name.sources"
if ! apt-get -q update --error-on=any -o DPkg::Lock::Timeout="$lock" -o Dir::Etc::SourceList=/dev/null \\
    -o Dir::Etc::SourceParts="$work/parts" -o APT::Get::List-Cleanup=0 >"$work/out" 2>&1; then
  grep -E '^(E|W|Err):' "$work/out" >&2 || cat "$work/out" >&2
  exit {REFUSED_BY_APT}
fi
[ ! -e "$target" ] || cp -p "$target" "$work/previous"
tmp=$(mktemp "{SOURCES_DIR}/.reconciler.XXXXXXXX")
cat "$work/parts/$name.sources" > "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$target"
if ! apt-cache policy >/dev/null 2>"$work/err" || grep -q '^E:' "$work/err"; then
  if [ -e "$work/previous" ]; then mv -f "$work/previous" "$target"; else rm -f "$target"; fi
  cat "$work/err" >&2
  exit {BREAKS_CONFIG}
fi
"""

# $1 name: delete the file, only when it carries the reconciler's header.
REMOVE = f"""
set -eu
f={SOURCES_DIR}/$1.sources
[ -e "$f" ] || exit 0
if ! head -n1 "$f" | grep -q '^{HEADER}'; then
  echo "$f was not written by the reconciler (no '{HEADER}' header); left in place" >&2
  exit {NOT_OURS}
fi
rm -f "$f"
"""
