"""A tiny signed apt repository of dummy packages, served from inside a test host.

Tests of the ``apt_repositories`` and ``packages`` kinds install from it instead of
Debian's mirror: no internet, packages that install in a second, and versions the
test chooses (to see an upgrade, a pin, a dependency that blocks a removal).

    repo = AptRepo(tmp_path / "repo")
    repo.add("reconciler-test-hello", "1.0")
    repo.add("reconciler-test-app", "1.0", depends=["reconciler-test-hello"])
    repo.publish()                       # Packages, Release, InRelease, Release.gpg
    url = repo.serve(host)               # http://127.0.0.1:8099/ inside the host
    repo.public_key                      # ASCII-armored, for Signed-By

Built on this machine with ``dpkg-deb`` and ``gpg`` (both in Debian's base system);
the indexes are written here in Python (the formats are a handful of fields;
apt-ftparchive is not installed on the machine). It is a flat repository
(``Suites: ./``, no components). Served by ``python3 -m http.server`` on the host's
loopback, as a transient systemd unit, so apt fetches it over HTTP exactly as it
fetches any mirror, and verifies the InRelease signature with the key it is given.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from testbed.hosts import TestHost
from testbed.util import TestbedError, run

REPO_DIR_ON_HOST = "/srv/reconciler-test-repo"
UNIT = "reconciler-test-repo"
PORT = 8099


def _sha(path: Path, algo: str) -> str:
    return hashlib.new(algo, path.read_bytes()).hexdigest()


class AptRepo:
    """A flat apt repository under ``root``, signed with a key made for it."""

    def __init__(self, root: Path, *, uid: str = "reconciler tests <tests@reconciler.invalid>") -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.gnupg = Path(tempfile.mkdtemp(prefix="aptrepo-gnupg-"))
        os.chmod(self.gnupg, 0o700)
        self._gpg("--quick-generate-key", uid, "ed25519", "sign", "never")
        self.public_key = self._gpg("--armor", "--export").stdout
        if "BEGIN PGP PUBLIC KEY BLOCK" not in self.public_key:
            raise TestbedError("gpg did not export the repository key")

    def _gpg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(["gpg", "--homedir", str(self.gnupg), "--batch", "--pinentry-mode", "loopback",
                    "--passphrase", "", *args], timeout=120)

    def add(self, name: str, version: str, *, depends: list[str] | None = None) -> Path:
        """Build ``name_version_all.deb``: /usr/share/NAME/version holding the version, and a
        configuration file /etc/NAME/NAME.conf (a dpkg conffile: ``apt-get remove`` keeps it)."""
        with tempfile.TemporaryDirectory(prefix="aptrepo-pkg-") as work:
            pkg = Path(work) / "pkg"
            (pkg / "DEBIAN").mkdir(parents=True)
            (pkg / "usr/share" / name).mkdir(parents=True)
            (pkg / "usr/share" / name / "version").write_text(version + "\n")
            (pkg / "etc" / name).mkdir(parents=True)
            (pkg / "etc" / name / f"{name}.conf").write_text(f"# {name} {version}\n")
            (pkg / "DEBIAN/conffiles").write_text(f"/etc/{name}/{name}.conf\n")
            control = [f"Package: {name}", f"Version: {version}", "Architecture: all",
                       "Maintainer: reconciler tests <tests@reconciler.invalid>", "Section: misc",
                       "Priority: optional"]
            if depends:
                control.append(f"Depends: {', '.join(depends)}")
            control.append(f"Description: dummy package {name} {version} for reconciler's apt tests")
            (pkg / "DEBIAN/control").write_text("\n".join(control) + "\n")
            deb = self.root / f"{name}_{version}_all.deb"
            run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(deb)], timeout=120)
        return deb

    def publish(self) -> None:
        """(Re)write Packages, Packages.gz, Release and its signatures (InRelease, Release.gpg)."""
        stanzas = []
        for deb in sorted(self.root.glob("*.deb")):
            control = run(["dpkg-deb", "--field", str(deb)], timeout=60).stdout.strip()
            stanzas.append("\n".join([control, f"Filename: ./{deb.name}", f"Size: {deb.stat().st_size}",
                                      f"MD5sum: {_sha(deb, 'md5')}", f"SHA256: {_sha(deb, 'sha256')}"]))
        packages = self.root / "Packages"
        packages.write_text("\n\n".join(stanzas) + "\n")
        (self.root / "Packages.gz").write_bytes(gzip.compress(packages.read_bytes(), mtime=0))
        indexes = [packages, self.root / "Packages.gz"]
        release = ["Origin: reconciler-tests", "Label: reconciler-tests", "Architectures: all",
                   f"Date: {email.utils.formatdate(usegmt=True)}"]
        for field, algo in (("MD5Sum", "md5"), ("SHA256", "sha256")):
            release.append(f"{field}:")
            release += [f" {_sha(p, algo)} {p.stat().st_size} {p.name}" for p in indexes]
        (self.root / "Release").write_text("\n".join(release) + "\n")
        for name in ("InRelease", "Release.gpg"):
            (self.root / name).unlink(missing_ok=True)
        self._gpg("--clearsign", "-o", str(self.root / "InRelease"), str(self.root / "Release"))
        self._gpg("--detach-sign", "--armor", "-o", str(self.root / "Release.gpg"),
                  str(self.root / "Release"))

    def serve(self, host: TestHost) -> str:
        """Copy the repository into ``host`` and serve it on the host's 127.0.0.1:PORT
        (restarting the server when it runs already); returns its URL."""
        with tempfile.NamedTemporaryFile(suffix=".tar") as archive:
            with tarfile.open(archive.name, "w") as tar:
                tar.add(self.root, arcname=".")
            host.exec(f"rm -rf {REPO_DIR_ON_HOST} && mkdir -p {REPO_DIR_ON_HOST}")
            run(["docker", "cp", archive.name, f"{host.container_id}:/tmp/reconciler-test-repo.tar"],
                timeout=120)
        host.exec(f"tar -C {REPO_DIR_ON_HOST} -xf /tmp/reconciler-test-repo.tar && "
                  "rm /tmp/reconciler-test-repo.tar")
        host.exec(f"systemctl stop {UNIT} 2>/dev/null; systemctl reset-failed {UNIT} 2>/dev/null; "
                  f"systemd-run --unit {UNIT} python3 -m http.server {PORT} --bind 127.0.0.1 "
                  f"--directory {REPO_DIR_ON_HOST}", timeout=60)
        host.exec(f"for i in $(seq 50); do python3 -c \"import urllib.request as u; "
                  f"u.urlopen('http://127.0.0.1:{PORT}/InRelease', timeout=2)\" 2>/dev/null && exit 0; "
                  "sleep 0.2; done; exit 1", timeout=60)
        return f"http://127.0.0.1:{PORT}/"

    def close(self) -> None:
        """Stop the gpg-agent this repository's keyring started and delete the keyring."""
        run(["gpgconf", "--homedir", str(self.gnupg), "--kill", "gpg-agent"], check=False, timeout=30)
        shutil.rmtree(self.gnupg, ignore_errors=True)
