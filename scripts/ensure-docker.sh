#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine (idempotent).
#
# Fast path: when `docker info` already works we return at once.
# Otherwise (fresh Debian 12 machine, as root): install the machine packages the
# test bed needs (only the missing ones), start dockerd in the background and
# wait until it answers. Fails loudly (non-zero exit, log tail) when it cannot.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WAIT_SECONDS=${DOCKER_WAIT_SECONDS:-60}

log() { printf '[ensure-docker] %s\n' "$*" >&2; }
die() { printf '[ensure-docker] ERROR: %s\n' "$*" >&2; exit 1; }

docker_ok() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }

# Packages the test bed needs on the machine itself (the docker engine, the
# image build tools and the helpers used by testbed/).
PKGS=(docker.io debootstrap busybox-static ca-certificates openssh-client procps util-linux)

missing_pkgs() {
    local p
    for p in "${PKGS[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            printf '%s\n' "$p"
        fi
    done
}

if docker_ok && [ -z "$(missing_pkgs)" ]; then
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages and starts dockerd)"

mapfile -t MISSING < <(missing_pkgs)
if [ "${#MISSING[@]}" -gt 0 ]; then
    log "installing missing packages: ${MISSING[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >/dev/null \
        || die "apt-get install ${MISSING[*]} failed"
fi

if docker_ok; then
    exit 0
fi

command -v dockerd >/dev/null 2>&1 || die "dockerd not found after installing docker.io"

# Another session may be starting dockerd right now: serialise the start.
exec 9>/run/reconciler-ensure-docker.lock
flock -w "$WAIT_SECONDS" 9 || die "timed out waiting for the ensure-docker lock"

if ! docker_ok; then
    if pgrep -x dockerd >/dev/null 2>&1; then
        log "dockerd is already running but not answering yet; waiting"
    else
        log "starting dockerd in the background (log: $DOCKERD_LOG)"
        # setsid + nohup: the daemon must outlive this script and its session.
        # It must also inherit no descriptor beyond 0-2: a caller's lock (setup.sh holds
        # its setup lock on fd 8, this script its own on fd 9) would otherwise stay held
        # by dockerd for as long as it runs, and the next setup would wait forever.
        (
            for fd_path in /proc/$BASHPID/fd/*; do
                fd=${fd_path##*/}
                if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
            done
            exec setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null
        ) &
        disown || true
    fi
    deadline=$((SECONDS + WAIT_SECONDS))
    until docker_ok; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "last lines of $DOCKERD_LOG:"
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "Docker engine did not answer within ${WAIT_SECONDS}s"
        fi
        if ! pgrep -x dockerd >/dev/null 2>&1; then
            log "last lines of $DOCKERD_LOG:"
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "dockerd exited during start-up"
        fi
        sleep 1
    done
    log "Docker engine is up: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
fi
