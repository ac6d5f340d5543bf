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
# Running it: the controller manages hosts over SSH (mount a key and known_hosts) or,
# with the Docker socket mounted, the engine of the machine it runs on. Mount a state
# directory to keep history and status across restarts:
#
#   docker run -d --name reconciler \
#     -v /srv/reconciler/state:/var/lib/reconciler/controller \
#     -v /srv/reconciler/controller.yaml:/etc/reconciler/controller.yaml:ro \
#     -v /srv/reconciler/id_ed25519:/root/.ssh/id_ed25519:ro \
#     -v /srv/reconciler/known_hosts:/root/.ssh/known_hosts:ro \
#     -p 127.0.0.1:9109:9109 reconciler

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

ENV PATH=/opt/reconciler/bin:$PATH \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/reconciler/controller"]
EXPOSE 9109
HEALTHCHECK --interval=30s --timeout=10s \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9109/healthz', timeout=5)"

ENTRYPOINT ["reconcile"]
# Inside a container, loopback is the container's own: listen on all its interfaces and
# publish the port to the machine's loopback (-p 127.0.0.1:9109:9109).
CMD ["watch", "--config", "/etc/reconciler/controller.yaml", "--listen", "0.0.0.0:9109", "--log-format", "json"]
