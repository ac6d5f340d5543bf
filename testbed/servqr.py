"""The ServQR flagship on a test host: staging, and the seed's health checks.

Shared by the demo (``testbed/demo.py``) and the end-to-end test, so both check
exactly what the architecture's "Monitoring Points" section lists:

1. Backend: ``GET /health`` answers ``{"status":"ok"}`` (through nginx over HTTPS,
   and on the service's own port);
2. Frontend: ``GET /`` answers 200 (through nginx over HTTPS);
3. Database: ``pg_isready -U servqr`` inside the container;
4. Nginx: ``systemctl status nginx`` says active;
plus what the rest of the seed promises: the services enabled at boot, the firewall
open only on 22/80/443, the 02:00 backup job installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from testbed.hosts import TestHost, start_host
from testbed.images import Images
from testbed.util import REPO_ROOT, TestbedError, cache_dir, file_lock, log

SPEC_DIR = REPO_ROOT / "specs" / "servqr"
STANDINS_DIR = REPO_ROOT / "examples" / "servqr-standins"
DOMAIN = "servqr.example.com"
# No registry is reachable here: the test bed's PostgreSQL 15 image stands in for
# the one the spec names, loaded into the host's own engine under that name.
POSTGRES_IMAGE = "postgres:15-alpine"


def copy_spec(dest_root: Path) -> Path:
    """Copy specs/servqr and the stand-ins below ``dest_root`` keeping their relative
    layout (the spec's templates point at ../../examples/servqr-standins), and make
    ``dest_root`` a git work tree (branch main) as the real repository is: a spec may
    only read files inside its repository, else only inside its own directory."""
    spec = dest_root / "specs" / "servqr"
    shutil.copytree(SPEC_DIR, spec)
    shutil.copytree(STANDINS_DIR, dest_root / "examples" / "servqr-standins")
    if not (dest_root / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(dest_root)], check=True, capture_output=True)
    return spec


def stage_images(host: TestHost, images: Images) -> None:
    """Put the PostgreSQL image into the host's Docker engine as ``POSTGRES_IMAGE``.

    A host with Docker gets it through ``docker load``. A bare host has no Docker yet
    (the spec installs it): its future engine's storage is seeded instead, so the
    image is there when the spec's docker.io starts for the first time."""
    if host.exec(["sh", "-c", "command -v docker"], check=False).returncode != 0:
        seed_docker_root(host, images)
        return
    host.wait_docker()
    host.load_image(images.postgres)
    host.ssh_exec(f"docker tag {images.postgres} {POSTGRES_IMAGE}")


def docker_root_seed(images: Images) -> Path:
    """A tarball of Docker's image store (``image/`` and ``vfs/`` of /var/lib/docker)
    holding only the PostgreSQL image as ``POSTGRES_IMAGE``; made once, in a throwaway
    ``host`` container (same Debian docker.io, same vfs driver as the bare image's
    daemon.json), and cached by the two images' tags."""
    key = hashlib.sha256(f"{images.host} {images.postgres} {POSTGRES_IMAGE}".encode()).hexdigest()[:16]
    path = cache_dir() / f"docker-root-{key}.tar"
    if path.exists():
        return path
    with file_lock(f"docker-root-{key}", what="seeding a Docker image store"):
        if path.exists():
            return path
        log(f"building the Docker image store seed {path.name}")
        with start_host("docker-seed", image=images.host, ports=()) as seed:
            seed.load_image(images.postgres)
            seed.exec(f"docker tag {images.postgres} {POSTGRES_IMAGE} "
                      f"&& docker rmi {images.postgres} >/dev/null "
                      "&& systemctl stop docker.socket docker.service containerd.service")
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as out:  # binary: run() is text mode
                tar = subprocess.run(["docker", "exec", seed.container_id, "tar", "-C", "/var/lib/docker",
                                      "-c", "image", "vfs"], stdout=out, stderr=subprocess.PIPE, timeout=600,
                                     check=False)
            if tar.returncode != 0:
                tmp.unlink(missing_ok=True)
                raise TestbedError(f"archiving the seed's image store failed: {tar.stderr.decode()[-2000:]}")
            os.replace(tmp, path)
    return path


def seed_docker_root(host: TestHost, images: Images) -> None:
    """Unpack the image store seed into the host's (still empty) /var/lib/docker."""
    seed = docker_root_seed(images)
    host.exec("mkdir -p /var/lib/docker && chmod 0710 /var/lib/docker")
    with open(seed, "rb") as fh:
        proc = subprocess.run(["docker", "cp", "-", f"{host.container_id}:/var/lib/docker"], stdin=fh,
                              capture_output=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise TestbedError(f"seeding /var/lib/docker on {host.name}: {proc.stderr.decode()[-2000:]}")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _sh(host: TestHost, cmd: str) -> tuple[int, str]:
    # docker exec, not SSH: the checks look at the host as root even when the spec
    # reaches it as a deploy user and root may not log in.
    proc = host.exec(cmd, check=False, timeout=60)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def health_checks(host: TestHost, domain: str = DOMAIN) -> list[Check]:
    checks: list[Check] = []
    curl = f"curl -sk --max-time 10 -H 'Host: {domain}'"

    rc, out = _sh(host, f"{curl} https://127.0.0.1/health")
    checks.append(Check("backend GET /health via nginx (https)", rc == 0 and _is_ok_json(out), out[-200:]))
    rc, out = _sh(host, "curl -s --max-time 10 http://127.0.0.1:8081/health")
    checks.append(Check("backend GET /health on :8081", rc == 0 and _is_ok_json(out), out[-200:]))
    rc, out = _sh(host, f"{curl} -o /dev/null -w '%{{http_code}}' https://127.0.0.1/")
    checks.append(Check("frontend GET / via nginx (https) -> 200", out == "200", out))
    rc, out = _sh(host, f"{curl} -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://127.0.0.1/")
    checks.append(Check("http redirects to https", out.startswith("301 https://"), out))
    rc, out = _sh(host, "docker exec servqr-postgres pg_isready -U servqr")
    checks.append(Check("database pg_isready -U servqr", rc == 0, out))
    rc, out = _sh(host, "systemctl is-active nginx")
    checks.append(Check("nginx active", out == "active", out))
    units = "servqr-postgres servqr-backend servqr-frontend"
    rc, out = _sh(host, f"systemctl is-enabled {units} nginx | paste -sd' '")
    checks.append(Check("services enabled at boot", out == "enabled enabled enabled enabled", out))
    rc, out = _sh(host, f"systemctl is-active {units} | paste -sd' '")
    checks.append(Check("services active", out == "active active active", out))
    rc, out = _sh(host, "nft list table inet reconciler")
    opened = [p for p in ("22", "80", "443") if f"dport {p} accept" in out]
    checks.append(Check("firewall: incoming drop except 22, 80, 443",
                        rc == 0 and "policy drop" in out and len(opened) == 3, f"open: {', '.join(opened)}"))
    rc, out = _sh(host, "grep -h '^[0-9]' /etc/cron.d/reconciler-backup-servqr-backup")
    checks.append(Check("daily 02:00 backup scheduled", out.startswith("0 2 * * *"), out))
    return checks


def https_from_outside(host: TestHost, domain: str = DOMAIN) -> Check:
    """The site as a user sees it: HTTPS from this machine to the host's published 443."""
    port = host.published_port(443)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(f"https://127.0.0.1:{port}/health", headers={"Host": domain})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:  # loopback only
            body = resp.read().decode()
            return Check(f"https://127.0.0.1:{port}/health from outside", _is_ok_json(body), body)
    except OSError as exc:
        return Check(f"https://127.0.0.1:{port}/health from outside", False, str(exc))


def _is_ok_json(text: str) -> bool:
    try:
        return bool(json.loads(text) == {"status": "ok"})
    except ValueError:
        return False


def summary(checks: list[Check]) -> str:
    lines = [f"  {'✓' if c.ok else '✗'} {c.name}" + ("" if c.ok else f"  ({c.detail})") for c in checks]
    passed = sum(c.ok for c in checks)
    lines.append(f"  {passed}/{len(checks)} health checks passed")
    return "\n".join(lines)
