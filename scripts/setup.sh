#!/usr/bin/env bash
# Prepare this machine (fresh Debian 12, as root) for the demo and the tests:
#   1. machine packages (python3 venv support, git, chromium ...), only the missing ones
#   2. .venv in the repo with the machine's python3 (>= 3.11) and `pip install -e '.[test]'`
#   3. the Docker engine (scripts/ensure-docker.sh)
#   4. the test bed images (python -m testbed.images build)
# Idempotent, and quick when everything is already there. Prints each phase's time.
# SETUP_TIMINGS_FILE=path: also write "phase seconds" lines there (used by test.sh).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
TOTAL_START=$(now)
PHASE_START=
phase_begin() { PHASE_START=$(now); log "$1 ..."; }
phase_end() {
    local secs
    secs=$(awk -v a="$PHASE_START" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    log "$1 done in ${secs}s"
    if [ -n "${SETUP_TIMINGS_FILE:-}" ]; then printf '%s %s\n' "$1" "$secs" >>"$SETUP_TIMINGS_FILE"; fi
}

[ "$(id -u)" -eq 0 ] || die "run as root (installs packages, starts dockerd, builds images)"

# Serialise concurrent setups of this checkout (they share .venv).
LOCK_DIR=${RECONCILER_TESTBED_CACHE:-/var/cache/reconciler-testbed}/locks
mkdir -p "$LOCK_DIR"
exec 8>"$LOCK_DIR/setup-$(printf '%s' "$REPO" | sha256sum | cut -c1-12).lock"
flock -w 900 8 || die "timed out waiting for another setup.sh of $REPO"

# --- 1. machine packages -----------------------------------------------------------
phase_begin packages
pick_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 /usr/bin/python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# testssl.sh: the TLS scanner the nginx tests run against a test host's published 443.
# chromium (+ a font to render text): the controller's status page is tested in a real
# headless browser (tests/support/browser.py). Each only installed when missing.
for p in git ca-certificates testssl.sh chromium fonts-liberation; do have_pkg "$p" || need+=("$p"); done
PY=$(pick_python || true)
if [ -z "$PY" ]; then
    need+=(python3 python3-venv)
elif ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need+=(python3-venv)
fi
if [ "${#need[@]}" -gt 0 ]; then
    log "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
    PY=$(pick_python) || die "no python3 >= 3.11 found after installing python3"
fi
log "python: $PY ($("$PY" -c 'import platform; print(platform.python_version())'))"
phase_end packages

# --- 2. virtualenv -------------------------------------------------------------------
phase_begin venv
STAMP=.venv/.setup-stamp
want_stamp=$(sha256sum <pyproject.toml | cut -c1-16)
if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
    log "creating .venv with $PY"
    rm -rf .venv
    "$PY" -m venv .venv || die "$PY -m venv .venv failed"
fi
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want_stamp" ] || [ ! -x .venv/bin/reconcile ] \
    || [ ! -x .venv/bin/pytest ]; then
    log "pip install -e '.[test]'"
    ok=0
    for attempt in 1 2 3; do
        if .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'; then
            ok=1
            break
        fi
        log "pip install failed (attempt $attempt); the package may be mid-edit, retrying in 20s"
        sleep 20
    done
    [ "$ok" -eq 1 ] || die "pip install -e '.[test]' failed"
    printf '%s\n' "$want_stamp" >"$STAMP"
else
    log ".venv is up to date"
fi
# Bytecode for the editable sources: with PYTHONDONTWRITEBYTECODE set (as some CI and
# session environments do) every `reconcile` run would otherwise compile the package
# again, about 0.2 s each; the suite runs the CLI hundreds of times. Stale files are
# ignored by Python (it checks the source's mtime), so this is only ever a speed-up.
.venv/bin/python -m compileall -q -j 0 reconciler providers testbed >/dev/null || true
phase_end venv

# --- 3. Docker engine ----------------------------------------------------------------
phase_begin docker
# Every test host runs systemd, and every systemd (and journald, udev, logind ...) takes
# inotify instances from the one per-uid budget of the machine's kernel (root in each
# container is root here). Debian's default of 128 instances runs out at about 20 hosts
# (the fleet tests and benchmark start that many): systemd then fails "Failed to create
# inotify object: Too many open files" and never finishes booting. Raise the limits,
# never lower them.
raise_sysctl() {
    local key=$1 want=$2 have
    have=$(sysctl -n "$key" 2>/dev/null || echo 0)
    if [ "$have" -lt "$want" ]; then
        sysctl -qw "$key=$want" >/dev/null 2>&1 && log "$key: $have -> $want" \
            || log "warning: could not raise $key from $have (many test hosts at once may not boot)"
    fi
}
raise_sysctl fs.inotify.max_user_instances 8192
raise_sysctl fs.inotify.max_user_watches 1048576
bash "$REPO/scripts/ensure-docker.sh" || die "the Docker engine is not available (see above)"
phase_end docker

# --- 4. test bed images --------------------------------------------------------------
phase_begin images
.venv/bin/python -m testbed.images build || die "building the test bed images failed (see above)"
phase_end images

log "ready in $(awk -v a="$TOTAL_START" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s"
