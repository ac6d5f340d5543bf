"""The test bed's package cache: one apt-cacher-ng container that test hosts use as
their HTTP proxy for Debian's mirror, so a run does not download the same packages
(and package lists) again.

Why a caching proxy rather than a shared ``/var/cache/apt/archives`` bind mount:
apt holds that directory's lock for a whole ``apt-get install`` (download *and*
dpkg), so hosts sharing it would serialise their installs; a proxy also caches the
lists ``apt-get update`` fetches, and leaves each host's apt state its own. Measured
on this machine (bare host, the ServQR package set, 82.5 MB; see README "Package
cache"): Debian's mirror answers at 40-60 MB/s here, so the cache saves mirror
traffic more than time.

The container (``reconciler-tb-aptcache``, labels ``io.reconciler.testbed=1`` and
``io.reconciler.testbed.aptcache=1``, no session or pid label) is shared by every
session and outlives them; its data lives in ``CACHE_DIR/apt-cacher-ng`` so removing
the container (``scripts/clean-testbed.sh``) loses nothing. Hosts are pointed at it
per mirror host only (``Acquire::http::Proxy::deb.debian.org``), so a repository on
127.0.0.1 inside a host is never sent through the proxy.

``RECONCILER_TESTBED_APT_CACHE=0`` turns it off (hosts then reach the mirror directly).
When it cannot be started, hosts also go direct and a line says why.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit

from testbed.images import MIRROR, SECURITY_MIRROR, ensure_image
from testbed.util import LABEL, TestbedError, cache_dir, file_lock, log, run

CONTAINER = "reconciler-tb-aptcache"
CACHE_LABEL = "io.reconciler.testbed.aptcache"
PORT = 3142
#: Where test hosts get the proxy setting (apt reads apt.conf.d in lexical order).
PROXY_CONF = "/etc/apt/apt.conf.d/00reconciler-testbed-proxy"

_url: str | None = None
_failed: str | None = None


def enabled() -> bool:
    return os.environ.get("RECONCILER_TESTBED_APT_CACHE", "1") not in ("0", "no", "false", "")


def _address() -> str | None:
    """The cache container's bridge address when it is running, else None."""
    proc = run(["docker", "inspect", "--format", "{{.State.Running}} {{.NetworkSettings.IPAddress}}",
                CONTAINER], check=False, timeout=60)
    if proc.returncode != 0:
        return None
    running, _, address = proc.stdout.strip().partition(" ")
    return address if running == "true" and address else None


def _answers() -> bool:
    probe = run(["docker", "exec", CONTAINER, "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{PORT}"],
                check=False, timeout=30)
    return probe.returncode == 0


def _start() -> str:
    image = ensure_image("aptcache")
    data = cache_dir() / "apt-cacher-ng"
    data.mkdir(parents=True, exist_ok=True)
    current = run(["docker", "inspect", "--format", "{{.Config.Image}}", CONTAINER], check=False, timeout=60)
    if current.returncode == 0 and current.stdout.strip() != image:
        log(f"replacing {CONTAINER} (built from an older recipe)")
        run(["docker", "rm", "-f", CONTAINER], check=False, timeout=120)
    elif current.returncode == 0:
        run(["docker", "start", CONTAINER], timeout=60)
    if current.returncode != 0 or current.stdout.strip() != image:
        run(["docker", "run", "-d", "--name", CONTAINER, "--restart", "unless-stopped",
             "--label", f"{LABEL}=1", "--label", f"{CACHE_LABEL}=1",
             "-v", f"{data}:/var/cache/apt-cacher-ng", image], timeout=120)
    deadline = time.monotonic() + 30
    while not _answers():
        if time.monotonic() > deadline:
            logs = run(["docker", "logs", "--tail", "20", CONTAINER], check=False, timeout=30)
            raise TestbedError(f"{CONTAINER} does not answer on port {PORT}:\n{logs.stdout}{logs.stderr}")
        time.sleep(0.3)
    address = _address()
    if address is None:
        raise TestbedError(f"{CONTAINER} has no bridge address")
    return f"http://{address}:{PORT}"


def proxy_url() -> str | None:
    """``http://ADDRESS:3142`` of the running cache (started on first use), or None when
    it is turned off or could not be started (hosts then reach the mirror directly)."""
    global _url, _failed
    if not enabled() or _failed is not None:
        return None
    if _url is not None:
        return _url
    with file_lock("aptcache", what="package cache start"):
        address = _address()
        try:
            _url = f"http://{address}:{PORT}" if address and _answers() else _start()
        except TestbedError as exc:
            _failed = str(exc)
            log(f"package cache unavailable, test hosts reach Debian's mirror directly: {exc}")
            return None
    return _url


def mirror_hosts() -> list[str]:
    """Host names of the Debian mirrors the test bed's apt sources use (http only:
    a proxy cannot cache https)."""
    hosts = []
    for url in (MIRROR, SECURITY_MIRROR):
        parts = urlsplit(url)
        if parts.scheme == "http" and parts.hostname:
            hosts.append(parts.hostname)
    return sorted(set(hosts))


def proxy_conf(url: str) -> str:
    """The apt.conf snippet that sends only the Debian mirrors' traffic through ``url``."""
    lines = ["// Written by the reconciler test bed: Debian's mirror through the test bed's",
             "// package cache (testbed/aptcache.py). Test-bed only; not part of any spec."]
    lines += [f'Acquire::http::Proxy::{host} "{url}";' for host in mirror_hosts()]
    return "\n".join(lines) + "\n"
