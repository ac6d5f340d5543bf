"""Build and cache the test bed's container images (no registry needed).

Five images, each tagged ``reconciler-testbed/NAME:HASH`` where HASH is derived
from its recipe (``testbed/recipes/NAME/``: package list, build script, rootfs
overlay, image changes, plus the shared ``common.sh`` and the base image key), so
an unchanged recipe is reused in about a second:

* ``host``     -- Debian 12 with systemd as PID 1, sshd, nginx, nftables, ufw, cron,
                  docker.io (vfs) ... : the hosts reconciler converges in tests.
* ``bare``     -- a fresh Debian 12 server: systemd, sshd, sudo, python3 and nothing
                  else; the host a spec has to take from nothing to deployed.
* ``busybox``  -- Debian's busybox-static in an empty rootfs (CMD sh).
* ``postgres`` -- PostgreSQL 15 with an entrypoint compatible with the official image.
* ``aptcache`` -- apt-cacher-ng: the caching proxy for Debian's mirror that test hosts
                  use (see ``testbed/aptcache.py``).

The apt-based images start from a ``debootstrap --variant=minbase`` rootfs that is
cached as a tarball under the cache dir (default /var/cache/reconciler-testbed) and
imported as ``reconciler-testbed/base:KEY``. Builds are guarded by fcntl locks so
concurrent sessions never build the same image twice.

CLI::

    python -m testbed.images build [--rebuild] [NAME ...]
    python -m testbed.images tags
    python -m testbed.images clean [--base]     # remove testbed image tags (+ base tarball)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from testbed.util import (
    IMAGE_LABEL,
    LABEL,
    PID_LABEL,
    RECIPE_LABEL,
    TestbedError,
    cache_dir,
    file_lock,
    log,
    pipe,
    run,
)

#: Bump when the build *logic* in this file changes in a way that affects images.
BUILDER_VERSION = "3"

REPOSITORY = os.environ.get("RECONCILER_TESTBED_REPOSITORY", "reconciler-testbed")
RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
IMAGE_NAMES = ("host", "bare", "busybox", "postgres", "aptcache")
APT_IMAGES = ("host", "bare", "postgres", "aptcache")

SUITE = "bookworm"
MIRROR = os.environ.get("RECONCILER_TESTBED_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get(
    "RECONCILER_TESTBED_SECURITY_MIRROR", "http://deb.debian.org/debian-security"
)
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

# Files written into the debootstrap rootfs before it is tarred up.
BASE_FILES: dict[str, str] = {
    "etc/apt/sources.list": (
        f"deb {MIRROR} {SUITE} main\n"
        f"deb {MIRROR} {SUITE}-updates main\n"
        f"deb {SECURITY_MIRROR} {SUITE}-security main\n"
    ),
    "etc/apt/apt.conf.d/90testbed": (
        'APT::Install-Recommends "false";\n'
        'APT::Install-Suggests "false";\n'
        'Acquire::Languages "none";\n'
        'Acquire::Retries "3";\n'
    ),
    "etc/dpkg/dpkg.cfg.d/90testbed-nodoc": (
        "path-exclude=/usr/share/doc/*\n"
        "path-include=/usr/share/doc/*/copyright\n"
        "path-exclude=/usr/share/man/*\n"
        "path-exclude=/usr/share/info/*\n"
        "path-exclude=/usr/share/locale/*\n"
        "path-include=/usr/share/locale/locale.alias\n"
    ),
}

BUILD_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Images:
    """Tags of the test bed images (what the ``testbed_images`` fixture returns)."""

    host: str
    bare: str
    busybox: str
    postgres: str
    aptcache: str

    def as_dict(self) -> dict[str, str]:
        return {"host": self.host, "bare": self.bare, "busybox": self.busybox, "postgres": self.postgres,
                "aptcache": self.aptcache}


# --------------------------------------------------------------------------- hashing


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree_manifest(root: Path) -> bytes:
    """Stable description of a directory tree (paths, exec bits, content hashes)."""
    lines: list[str] = []
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            lines.append(f"L {rel} -> {os.readlink(path)}")
        elif path.is_file():
            executable = "x" if os.access(path, os.X_OK) else "-"
            lines.append(f"F {rel} {executable} {_sha256_file(path)}")
        elif path.is_dir():
            lines.append(f"D {rel}")
    return ("\n".join(lines) + "\n").encode()


def base_key() -> str:
    """Key of the debootstrap base (suite, mirrors, base files, builder version)."""
    payload = json.dumps(
        {"suite": SUITE, "variant": "minbase", "mirror": MIRROR, "files": BASE_FILES, "v": BUILDER_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def busybox_binary() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and not path.is_symlink():
            return path
    raise TestbedError(
        "busybox-static is not installed on this machine (no /bin/busybox); "
        "run `bash scripts/ensure-docker.sh` (it installs busybox-static)"
    )


def recipe_digest(name: str) -> str:
    """Hash of everything that determines image ``name``."""
    if name not in IMAGE_NAMES:
        raise TestbedError(f"unknown test bed image {name!r} (known: {', '.join(IMAGE_NAMES)})")
    h = hashlib.sha256()
    h.update(f"builder {BUILDER_VERSION}\nimage {name}\n".encode())
    h.update(_tree_manifest(RECIPES_DIR / name))
    if name in APT_IMAGES:
        h.update(f"base {base_key()}\n".encode())
        h.update(f"common {_sha256_file(RECIPES_DIR / 'common.sh')}\n".encode())
    else:
        h.update(f"busybox {_sha256_file(busybox_binary())}\n".encode())
    return h.hexdigest()


def image_tag(name: str) -> str:
    """The tag image ``name`` has (or will have) for the current recipe."""
    return f"{REPOSITORY}/{name}:{recipe_digest(name)[:16]}"


def base_image_tag() -> str:
    return f"{REPOSITORY}/base:{base_key()}"


def base_tarball_path() -> Path:
    return cache_dir() / f"base-{SUITE}-{base_key()}.tar"


# --------------------------------------------------------------------------- docker helpers


def image_exists(tag: str) -> bool:
    return (
        run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], check=False, timeout=60).returncode
        == 0
    )


def _changes(name: str, digest: str) -> list[str]:
    changes: list[str] = []
    changes_file = RECIPES_DIR / name / "changes"
    if changes_file.exists():
        for line in changes_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                changes.append(line)
    changes.append(f"LABEL {IMAGE_LABEL}={name}")
    changes.append(f"LABEL {RECIPE_LABEL}={digest}")
    argv: list[str] = []
    for change in changes:
        argv += ["--change", change]
    return argv


def _umount_below(path: Path) -> None:
    """Unmount anything left mounted below ``path`` (after a failed debootstrap)."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/mounts") as fh:
        points = [line.split()[1] for line in fh]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _rmtree(path: Path) -> None:
    if path.exists():
        _umount_below(path)
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- base


def ensure_base_tarball() -> Path:
    """debootstrap a minimal bookworm rootfs once and cache it as a tarball."""
    path = base_tarball_path()
    if path.exists():
        return path
    with file_lock("base-tarball", what="debootstrap base"):
        if path.exists():
            return path
        if shutil.which("debootstrap") is None:
            raise TestbedError("debootstrap is not installed; run `bash scripts/ensure-docker.sh`")
        work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=cache_dir()))
        rootfs = work / "rootfs"
        logfile = cache_dir() / "logs" / f"debootstrap-{base_key()}.log"
        logfile.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        log(f"debootstrap {SUITE} (minbase) -> {path} (log: {logfile})")
        try:
            with open(logfile, "w") as out:
                proc = subprocess.run(
                    ["debootstrap", "--variant=minbase", SUITE, str(rootfs), MIRROR],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=BUILD_TIMEOUT,
                    check=False,
                )
            if proc.returncode != 0:
                raise TestbedError(
                    f"debootstrap failed (exit {proc.returncode}); last lines of {logfile}:\n"
                    + "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
                )
            _umount_below(rootfs)
            for rel, content in BASE_FILES.items():
                target = rootfs / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
            shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
            (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
            shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
            (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tar.tmp")
            run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tmp), "."], timeout=600)
            os.replace(tmp, path)
        finally:
            _rmtree(work)
        log(f"debootstrap base ready in {time.monotonic() - started:.0f}s")
    return path


def ensure_base_image() -> str:
    tag = base_image_tag()
    if image_exists(tag):
        return tag
    with file_lock("base-image", what="base image import"):
        if image_exists(tag):
            return tag
        tarball = ensure_base_tarball()
        log(f"importing {tarball.name} as {tag}")
        run(
            [
                "docker",
                "import",
                "--change",
                f"LABEL {IMAGE_LABEL}=base",
                "--change",
                'CMD ["/bin/bash"]',
                str(tarball),
                tag,
            ],
            timeout=600,
        )
    return tag


# --------------------------------------------------------------------------- builds


def _build_apt_image(name: str, tag: str, digest: str) -> None:
    base = ensure_base_image()
    recipe = RECIPES_DIR / name
    container = f"reconciler-tb-build-{name}-{uuid.uuid4().hex[:8]}"
    logfile = cache_dir() / "logs" / f"build-{name}-{digest[:16]}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    log(f"building {tag} (log: {logfile})")
    try:
        with open(logfile, "w") as out:
            proc = subprocess.run(
                [
                    "docker",
                    "run",
                    "--name",
                    container,
                    "--label",
                    f"{LABEL}=1",
                    "--label",
                    f"{LABEL}.build={name}",
                    "--label",
                    f"{PID_LABEL}={os.getpid()}",
                    "-v",
                    f"{recipe}:/tb-recipe:ro",
                    "-v",
                    f"{RECIPES_DIR / 'common.sh'}:/tb-common.sh:ro",
                    base,
                    "/bin/bash",
                    "/tb-recipe/build.sh",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        if proc.returncode != 0:
            raise TestbedError(
                f"building image {name} failed (build.sh exit {proc.returncode}); last lines of {logfile}:\n"
                + "\n".join(logfile.read_text(errors="replace").splitlines()[-40:])
            )
        # export | import flattens the image and gives it a clean config (no build labels/cmd).
        pipe(
            ["docker", "export", container],
            ["docker", "import", *_changes(name, digest), "-", tag],
            timeout=BUILD_TIMEOUT,
        )
    finally:
        run(["docker", "rm", "-f", "-v", container], check=False, timeout=120)


def _build_busybox(tag: str, digest: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="busybox-", dir=cache_dir()))
    try:
        rootfs = work / "rootfs"
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "sys", "dev"):
            (rootfs / d).mkdir(parents=True, exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)
        shutil.copy2(busybox_binary(), rootfs / "bin/busybox")
        shutil.copytree(RECIPES_DIR / "busybox" / "rootfs", rootfs, dirs_exist_ok=True)
        # Applet symlinks (/bin/sh -> /bin/busybox ...), created by busybox itself.
        run(["chroot", str(rootfs), "/bin/busybox", "--install", "-s"], timeout=60)
        if not (rootfs / "bin/sh").is_symlink():
            raise TestbedError("busybox --install -s did not create /bin/sh")
        pipe(
            ["tar", "--numeric-owner", "--owner=0", "--group=0", "-C", str(rootfs), "-c", "."],
            ["docker", "import", *_changes("busybox", digest), "-", tag],
            timeout=300,
        )
    finally:
        _rmtree(work)


def ensure_image(name: str, *, rebuild: bool = False) -> str:
    """Return the tag of image ``name``, building it first when missing (or ``rebuild``)."""
    digest = recipe_digest(name)
    tag = f"{REPOSITORY}/{name}:{digest[:16]}"
    if not rebuild and image_exists(tag):
        return tag
    with file_lock(f"image-{name}", what=f"build of {tag}"):
        if image_exists(tag):
            if not rebuild:
                return tag
            run(["docker", "image", "rm", tag], check=False, timeout=120)
        started = time.monotonic()
        if name == "busybox":
            _build_busybox(tag, digest)
        else:
            _build_apt_image(name, tag, digest)
        log(f"built {tag} in {time.monotonic() - started:.0f}s")
    return tag


def ensure_images(*, rebuild: bool = False) -> Images:
    """Build (or reuse) all test bed images, missing ones in parallel; returns their tags."""
    missing = [n for n in IMAGE_NAMES if rebuild or not image_exists(image_tag(n))]
    if any(n in APT_IMAGES for n in missing):
        ensure_base_image()
    tags: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=len(IMAGE_NAMES)) as pool:
        futures = {name: pool.submit(ensure_image, name, rebuild=rebuild) for name in IMAGE_NAMES}
        for name, future in futures.items():
            tags[name] = future.result()
    return Images(**tags)


def testbed_image_tags() -> list[str]:
    """All tags of test bed images present in the engine (any recipe version)."""
    out = run(
        ["docker", "image", "ls", "--filter", f"label={IMAGE_LABEL}", "--format", "{{.Repository}}:{{.Tag}}"],
        timeout=60,
    ).stdout
    return sorted({t for t in out.split() if t.startswith(f"{REPOSITORY}/")})


def clean(*, base: bool = False) -> None:
    """Remove all test bed image tags; with ``base`` also the cached debootstrap tarballs."""
    for tag in testbed_image_tags():
        log(f"removing image {tag}")
        run(["docker", "image", "rm", tag], check=False, timeout=300)
    if base:
        for tarball in cache_dir().glob("base-*.tar"):
            log(f"removing {tarball}")
            tarball.unlink()


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.images", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build missing images (all by default) and print their tags")
    b.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(IMAGE_NAMES)}")
    b.add_argument("--rebuild", action="store_true", help="rebuild even when the tag exists")
    sub.add_parser("tags", help="print the current tag of each image (without building)")
    c = sub.add_parser("clean", help="remove all test bed image tags")
    c.add_argument("--base", action="store_true", help="also remove the cached debootstrap base tarball")
    args = parser.parse_args(argv)

    try:
        if args.cmd == "build":
            names = args.names or list(IMAGE_NAMES)
            for name in names:
                if name not in IMAGE_NAMES:
                    parser.error(f"unknown image {name!r}")
            started = time.monotonic()
            if set(names) == set(IMAGE_NAMES):
                tags = ensure_images(rebuild=args.rebuild).as_dict()
            else:
                tags = {name: ensure_image(name, rebuild=args.rebuild) for name in names}
            for name in names:
                print(f"{name}\t{tags[name]}", flush=True)
            print(f"images ready in {time.monotonic() - started:.1f}s", flush=True)
        elif args.cmd == "tags":
            for name in IMAGE_NAMES:
                print(f"{name}\t{image_tag(name)}")
        elif args.cmd == "clean":
            clean(base=args.base)
    except TestbedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
