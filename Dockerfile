# The reconciler GitOps controller as an image.
#
# Installs offline from a wheelhouse in the build context (the reconciler wheel and
# every dependency, for CPython 3.11 on glibc), so the build needs no package index:
#
#   pip wheel --wheel-dir wheelhouse .        # on a machine that reaches PyPI
#   docker build -t reconciler .              # any context holding Dockerfile + wheelhouse/
#
# BASE must provide python3 with venv; git and ssh-keygen are installed with apt only
# when the base lacks them (python:3.11-slim does; a prepared Debian base need not):
#
#   docker build --build-arg BASE=my-bookworm-python:latest -t reconciler .
#
# It runs as the unprivileged user `reconciler` (uid and gid 10001): managing hosts
# over SSH needs no privilege here. Mount a key and known_hosts readable by uid 10001,
# and a state directory owned by it to keep history and status across restarts:
#
#   install -d -o 10001 -g 10001 -m 0700 /srv/reconciler/state
#   docker run -d --name reconciler \
#     -v /srv/reconciler/state:/var/lib/reconciler/controller \
#     -v /srv/reconciler/controller.yaml:/etc/reconciler/controller.yaml:ro \
#     -v /srv/reconciler/id_ed25519:/home/reconciler/.ssh/id_ed25519:ro \
#     -v /srv/reconciler/known_hosts:/home/reconciler/.ssh/known_hosts:ro \
#     reconciler
#
# Root is needed only when the controller manages the machine it runs on: with the
# Docker socket mounted (root:docker 0660: `--user root`, or `--group-add` the socket's
# group when only containers are managed) or with `connect: local` (it writes /etc,
# runs systemctl and nft: `--user root`, with the host's file system and namespaces).
# A repository mounted from the machine (rather than fetched from a URL) must be owned
# by uid 10001, or trusted in a mounted /home/reconciler/.gitconfig (`[safe]`
# `directory = /repo/.git`): git refuses to read repositories owned by another user.
#
# The HTTP endpoint (/healthz, /metrics, /status, /hooks/git) listens on the
# container's own loopback, as everywhere, unless told otherwise. To reach it from the
# machine, listen on all the container's interfaces and publish to the machine's
# loopback only:  ... -p 127.0.0.1:9109:9109 reconciler watch --config
# /etc/reconciler/controller.yaml --listen 0.0.0.0:9109

ARG BASE=python:3.11-slim
FROM ${BASE}

# gitpython drives the git binary; `git verify-commit` needs ssh-keygen for SSH signatures.
RUN if ! command -v git >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi

COPY wheelhouse/ /tmp/wheelhouse/
RUN python3 -m venv /opt/reconciler \
    && /opt/reconciler/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse reconciler \
    && rm -rf /tmp/wheelhouse \
    && /opt/reconciler/bin/reconcile --version

RUN groupadd --system --gid 10001 reconciler \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/reconciler --create-home \
        --shell /usr/sbin/nologin reconciler \
    && install -d -o reconciler -g reconciler -m 0700 /home/reconciler/.ssh /var/lib/reconciler/controller

ENV PATH=/opt/reconciler/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/home/reconciler
USER reconciler
WORKDIR /home/reconciler
VOLUME ["/var/lib/reconciler/controller"]
EXPOSE 9109
HEALTHCHECK --interval=30s --timeout=10s \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9109/healthz', timeout=5)"

ENTRYPOINT ["reconcile"]
CMD ["watch", "--config", "/etc/reconciler/controller.yaml", "--log-format", "json"]
