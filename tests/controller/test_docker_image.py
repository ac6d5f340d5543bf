"""The Dockerfile builds the controller image offline, from a wheelhouse in the build
context and a locally built base (the test-host image: Debian 12 with python3, venv,
git and ssh-keygen, so the build needs no package index); the image runs
``reconcile --version``, and with an SSH key and known_hosts mounted it applies a
spec to a test host."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import __version__
from testbed.hosts import TestHost
from testbed.images import Images
from testbed.wheelhouse import build_project_wheel, ensure_wheelhouse
from tests.controller.support import LocalRepo, files_yaml, read_status, ssh_hosts_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
LABEL = "io.reconciler.testbed=1"
IMAGE_UID = 10001  # the Dockerfile's user `reconciler`


def docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def controller_image(testbed_images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    context = tmp_path_factory.mktemp("image-context")
    shutil.copy(REPO_ROOT / "Dockerfile", context / "Dockerfile")
    wheelhouse = context / "wheelhouse"
    shutil.copytree(ensure_wheelhouse(), wheelhouse, ignore=shutil.ignore_patterns(".complete"))
    shutil.copy(build_project_wheel(), wheelhouse)
    tag = f"reconciler-testbed/controller:test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    docker("build", "--build-arg", f"BASE={testbed_images.host}", "--label", LABEL, "-t", tag, str(context),
           timeout=900)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, timeout=120, check=False)


@pytest.mark.timeout(1200)
def test_image_runs_reconcile(controller_image: str) -> None:
    proc = docker("run", "--rm", "--label", LABEL, controller_image, "--version")
    assert proc.stdout.strip() == f"reconcile {__version__}"
    config = docker("image", "inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
                    controller_image).stdout
    assert '["reconcile"]' in config and '"watch"' in config
    # Loopback unless told otherwise: the image does not widen the default listen address.
    assert "--listen" not in config and "0.0.0.0" not in config
    help_text = docker("run", "--rm", "--label", LABEL, controller_image, "watch", "--help").stdout
    assert "default 127.0.0.1:9109" in " ".join(help_text.split())


@pytest.mark.timeout(600)
def test_image_runs_as_an_unprivileged_user(controller_image: str) -> None:
    user = docker("image", "inspect", "-f", "{{.Config.User}}", controller_image).stdout.strip()
    assert user == "reconciler"
    ids = docker("run", "--rm", "--label", LABEL, "--entrypoint", "id", controller_image).stdout
    assert ids.startswith("uid=10001(reconciler) gid=10001(reconciler)"), ids


@pytest.mark.timeout(600)
def test_image_applies_a_spec_over_ssh(controller_image: str, shared_host: TestHost, tmp_path: Path) -> None:
    repo = LocalRepo(tmp_path / "repo")
    # Paths as the container sees them (mounted below).
    repo.write("specs/hosts.yaml", ssh_hosts_yaml(shared_host).replace(str(shared_host.key_path), "/keys/id")
               .replace(str(shared_host.known_hosts_path), "/keys/known_hosts"))
    repo.write("specs/app.yaml", files_yaml({"/srv/from-image/app.conf": "applied by the image\n"}))
    sha = repo.commit("app")
    # The container runs as uid 10001: its state directory, key and (mounted) repository
    # are its own, as the Dockerfile's instructions say.
    state = tmp_path / "state"
    state.mkdir()
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(shared_host.key_path, keys / "id")
    shutil.copy(shared_host.known_hosts_path, keys / "known_hosts")
    for path in (state, keys, keys / "id", keys / "known_hosts", *repo.path.rglob("*"), repo.path):
        os.chown(path, IMAGE_UID, IMAGE_UID, follow_symlinks=False)
    # --network host: the test host's SSH port is published on this machine's 127.0.0.1.
    docker("run", "--rm", "--label", LABEL, "--network", "host",
           "-v", f"{repo.path}:/repo:ro", "-v", f"{state}:/var/lib/reconciler/controller",
           "-v", f"{keys / 'id'}:/keys/id:ro", "-v", f"{keys / 'known_hosts'}:/keys/known_hosts:ro",
           controller_image, "watch", "--once", "--repo", "/repo", "--path", "specs", "--listen", "off")
    assert shared_host.exec(["cat", "/srv/from-image/app.conf"]).stdout == "applied by the image\n"
    assert read_status(state)["last_applied"]["revision"] == sha
