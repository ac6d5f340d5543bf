"""examples/plugin-kind, the plugin author's worked example (docs/plugins.md): installed
with pip into a fresh virtual environment it adds the ``cron_jobs`` kind to that
environment's ``reconcile`` (and to nothing else); there the example spec validates,
and on a real host the kind plans with a diff, applies, is idempotent, heals drift
and prunes what left the spec.

The new environment sees this checkout's environment (reconciler and its
dependencies) through a .pth file, so the install needs no network; the plugin
itself is built and installed by pip like any package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from testbed.hosts import TestHost
from testbed.util import REPO_ROOT
from tests.support.harness import host_entry

PLUGIN = REPO_ROOT / "examples" / "plugin-kind"


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("plugin-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site_packages = subprocess.run([str(python), "-c", where], capture_output=True, text=True, check=True,
                                   timeout=60).stdout.strip()
    ours = sysconfig.get_path("purelib")
    Path(site_packages, "checkout-env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    install = ["-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", str(PLUGIN)]
    proc = subprocess.run([str(python), *install], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return python


def reconcile(python: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``reconcile ARGS`` as the plugin's environment runs it (a throwaway HOME)."""
    with tempfile.TemporaryDirectory(prefix="reconcile-home-") as home:
        return subprocess.run([str(python), "-m", "reconciler", *map(str, args)], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "HOME": home})


def test_the_plugin_adds_its_kind_to_its_environment_only(plugin_python: Path) -> None:
    proc = reconcile(plugin_python, "validate", PLUGIN / "spec")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 host(s), 2 resource(s)" in proc.stdout
    reference = subprocess.run([str(plugin_python), "-c", "from reconciler.docs import reference_page; "
                                "from reconciler.provider import load_providers; "
                                "print(reference_page(load_providers()['cron_jobs'], None))"],
                               capture_output=True, text=True, timeout=120)
    assert "| `schedule` | string | required |" in reference.stdout, reference.stderr
    # This checkout's own environment does not have the plugin: the key is unknown there.
    without = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(PLUGIN / "spec")],
                             capture_output=True, text=True, timeout=120)
    assert without.returncode == 1
    assert "cron_jobs: unknown" in without.stderr


def test_the_plugin_validates_offline(plugin_python: Path, tmp_path: Path) -> None:
    (tmp_path / "hosts.yaml").write_text("hosts:\n  web: {connect: local}\n")
    (tmp_path / "jobs.yaml").write_text("cron_jobs:\n  - {name: bad.name, schedule: '* *', command: x}\n")
    proc = reconcile(plugin_python, "validate", tmp_path)
    assert proc.returncode == 1
    assert "jobs.yaml:2:6: cron_jobs[0].name: use letters, digits" in proc.stderr
    assert "cron_jobs[0].schedule: '* *': write five fields" in proc.stderr


@pytest.mark.timeout(600)
def test_the_plugin_kind_on_a_real_host(plugin_python: Path, fresh_host: TestHost, tmp_path: Path) -> None:
    host = fresh_host
    spec = tmp_path / "spec"
    spec.mkdir()
    (spec / "hosts.yaml").write_text(json.dumps({"hosts": {"web": host_entry(host)}}))
    (spec / "jobs.yaml").write_text((PLUGIN / "spec" / "jobs.yaml").read_text())

    plan = reconcile(plugin_python, "plan", spec, "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "  + cron_jobs:tmp-cleanup" in plan.stdout
    assert "          +30 3 * * * root find /var/tmp -type f -mtime +7 -delete" in plan.stdout

    applied = reconcile(plugin_python, "apply", spec)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete! 2 applied, 0 failed, 0 skipped." in applied.stdout
    text = host.exec(["cat", "/etc/cron.d/reconciler-job-heartbeat"]).stdout
    assert text.endswith("*/5 * * * * nobody date > /tmp/heartbeat\n")
    owner_mode = host.exec(["stat", "-c", "%U %a", "/etc/cron.d/reconciler-job-heartbeat"]).stdout.strip()
    assert owner_mode == "root 644"
    assert reconcile(plugin_python, "plan", spec, "--detailed-exitcode").returncode == 0

    host.exec("sed -i 's/nobody/root/' /etc/cron.d/reconciler-job-heartbeat")
    drift = reconcile(plugin_python, "plan", spec)
    assert "(drift: changed on the host outside reconciler)" in drift.stdout
    assert "          -*/5 * * * * root date > /tmp/heartbeat" in drift.stdout
    assert "          +*/5 * * * * nobody date > /tmp/heartbeat" in drift.stdout

    (spec / "jobs.yaml").write_text("cron_jobs:\n  - {name: tmp-cleanup, schedule: '30 3 * * *', "
                                    "command: 'find /var/tmp -type f -mtime +7 -delete', "
                                    "environment: {MAILTO: ''}}\n")
    pruned = reconcile(plugin_python, "apply", spec)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert "  ✓ web: cron_jobs:heartbeat (delete)" in pruned.stdout
    assert host.exec(["test", "-e", "/etc/cron.d/reconciler-job-heartbeat"], check=False).returncode != 0
