#!/usr/bin/env bash
# Remove test bed containers: everything labelled io.reconciler.testbed=1 (only
# containers the test bed started; nothing else is touched).
#   --stale   only those whose starting process (label io.reconciler.testbed.pid) is gone:
#             safe while other test sessions are running
# Session temp dirs (/tmp/reconciler-testbed-PID-*) of processes that are gone are removed too.
#   --images  also remove the test bed images (labelled io.reconciler.testbed.image)
#   --base    also remove the cached debootstrap base tarball(s)
set -euo pipefail

stale=0 images=0 base=0
for arg in "$@"; do
    case "$arg" in
        --stale) stale=1 ;;
        --images) images=1 ;;
        --base) base=1 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

ids=()
while read -r id pid; do
    [ -n "$id" ] || continue
    if [ "$stale" -eq 1 ]; then
        # No pid label: not known to be stale. Live pid: its session may still use it.
        if [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null; then continue; fi
    fi
    ids+=("$id")
done < <(docker ps -a --filter label=io.reconciler.testbed=1 \
    --format '{{.ID}} {{.Label "io.reconciler.testbed.pid"}}')

if [ "${#ids[@]}" -gt 0 ]; then
    echo "removing ${#ids[@]} test bed container(s)"
    docker rm -f -v "${ids[@]}" >/dev/null
else
    echo "no test bed containers to remove"
fi

# Session temp dirs (SSH key, known_hosts) of test bed processes that are gone.
for dir in "${TMPDIR:-/tmp}"/reconciler-testbed-*-*; do
    [ -d "$dir" ] || continue
    pid=${dir##*/reconciler-testbed-}
    pid=${pid%%-*}
    case "$pid" in ''|*[!0-9]*) continue ;; esac
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -rf "$dir"
    fi
done

if [ "$images" -eq 1 ]; then
    mapfile -t tags < <(docker image ls --filter label=io.reconciler.testbed.image \
        --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>' || true)
    if [ "${#tags[@]}" -gt 0 ]; then
        echo "removing images: ${tags[*]}"
        docker image rm "${tags[@]}" >/dev/null || true
    fi
fi
if [ "$base" -eq 1 ]; then
    rm -fv "${RECONCILER_TESTBED_CACHE:-/var/cache/reconciler-testbed}"/base-*.tar
fi
