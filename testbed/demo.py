"""The demo (``bash scripts/demo.sh`` runs ``.venv/bin/python -m testbed.demo``).

1. makes sure the Docker engine and the test bed images are there;
2. starts a throwaway *bare* Debian 12 test host (one per host of the spec: systemd, sshd,
   sudo, python3 and nothing else) and shows it coming up; the reconciler reaches it as
   the user ``deploy``, who becomes root with sudo (root may not log in over SSH);
3. runs ``reconcile --version``;
4. when the CLI has ``plan``: runs ``reconcile plan``, ``reconcile apply`` and a second
   ``reconcile plan`` against the test host, using a copy of ``specs/servqr`` whose
   hosts point at the test host (or, without that spec, a tiny spec of its own);
5. for the ServQR spec: runs every health check of the architecture's "Monitoring
   Points" on the converged host and prints a summary.

Test hosts are removed at the end, also on Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from testbed.engine import ensure_docker
from testbed.hosts import TestHost, cleanup_session, install_signal_handlers, session_id, start_hosts
from testbed.images import ensure_images
from testbed.servqr import health_checks, https_from_outside, stage_images, summary
from testbed.util import REPO_ROOT, TestbedError

DEFAULT_SPEC = REPO_ROOT / "specs" / "servqr"


def say(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def reconcile_binary() -> str:
    candidate = Path(sys.executable).parent / "reconcile"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("reconcile")
    if found is None:
        raise TestbedError("`reconcile` is not installed; run `bash scripts/setup.sh`")
    return found


def spec_hosts(spec_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The spec file declaring ``hosts:`` and that mapping."""
    for path in sorted(spec_dir.glob("*.y*ml")):
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, dict) and isinstance(data.get("hosts"), dict):
            return path, data
    return None


DEPLOY_USER = "deploy"


def host_entry(host: TestHost, vars_: dict[str, Any] | None = None, *,
               user: str | None = None) -> dict[str, Any]:
    """The ``hosts:`` entry for ``host``: as root, or as ``user`` becoming root with sudo."""
    entry: dict[str, Any] = {
        "connect": host.ssh_url if user is None else host.ssh_url_as(user),
        "identity_file": str(host.key_path),
        "known_hosts": str(host.known_hosts_path),
    }
    if user is not None:
        entry["become"] = "sudo"
    if vars_:
        entry["vars"] = vars_
    return entry


def prepare_spec(spec: Path, workdir: Path) -> tuple[Path, list[str]]:
    """Copy ``spec`` to ``workdir`` (same depth below the repo, so relative template
    paths like ../../examples still resolve); returns (dir, host names)."""
    shutil.copytree(spec, workdir)
    found = spec_hosts(workdir)
    if found is None:
        raise TestbedError(f"{spec}: no file declares `hosts:`")
    return workdir, list(found[1]["hosts"])


def point_hosts_at(workdir: Path, hosts: dict[str, TestHost], *, user: str | None = None) -> None:
    """Point the spec's hosts at test hosts, reached as root or as ``user`` with sudo."""
    found = spec_hosts(workdir)
    assert found is not None
    path, data = found
    for name, host in hosts.items():
        old = data["hosts"][name] or {}
        data["hosts"][name] = host_entry(host, old.get("vars"), user=user)
    header = "# Written by testbed/demo.py: the spec's hosts replaced by throwaway test hosts.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))


def tiny_spec(workdir: Path) -> tuple[Path, list[str]]:
    workdir.mkdir(parents=True)
    (workdir / "demo.yaml").write_text(
        yaml.safe_dump(
            {
                "hosts": {"demo": {"connect": "ssh://root@127.0.0.1:22"}},
                "directories": [{"path": "/opt/demo", "owner": "root", "group": "root", "mode": "0755"}],
            },
            sort_keys=False,
        )
    )
    return workdir, ["demo"]


def run_reconcile(args: list[str]) -> int:
    # Human log lines even though stdout is not a terminal here.
    cmd = [reconcile_binary(), *args, *(["--log-format", "console"] if args[:1] != ["--version"] else [])]
    print("$ reconcile " + " ".join(args), flush=True)
    started = time.monotonic()
    rc = subprocess.run(cmd, check=False).returncode
    print(f"(exit {rc}, {time.monotonic() - started:.1f}s)", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spec", type=Path, default=DEFAULT_SPEC, help="spec directory (default specs/servqr)"
    )
    args = parser.parse_args(argv)
    install_signal_handlers()
    t0 = time.monotonic()
    workdir = REPO_ROOT / ".testbed" / f"demo-{session_id()}"
    try:
        say("Docker engine and test bed images")
        ensure_docker()
        images = ensure_images()
        for name, tag in images.as_dict().items():
            print(f"   {name:9} {tag}")

        reconcile = reconcile_binary()
        help_text = subprocess.run([reconcile, "--help"], capture_output=True, text=True, check=False).stdout
        core_ready = "plan" in help_text
        if core_ready and args.spec.is_dir():
            workdir, names = prepare_spec(args.spec, workdir)
            source = f"a copy of {args.spec}"
        else:
            workdir, names = tiny_spec(workdir)
            source = "a tiny demo spec"

        say(f"Starting {len(names)} throwaway test host(s) for {', '.join(names)}")
        started = time.monotonic()
        hosts = dict(zip(names, start_hosts(len(names), names=names, image=images.bare), strict=True))
        print(f"   ready in {time.monotonic() - started:.1f}s")
        for name, host in hosts.items():
            probe = host.exec(
                'echo "$(hostname): systemd $(systemctl is-system-running)"; '
                ". /etc/os-release; echo \"$PRETTY_NAME, $(dpkg-query -W -f='.\\n' | wc -l) packages\"; "
                "missing=; for c in nginx docker psql nft curl crontab; do "
                'command -v $c >/dev/null || missing="$missing $c"; done; echo "not installed:$missing"',
                check=False,
            )
            print(f"   {name}: {host.ssh_url_as(DEPLOY_USER)}, sudo to root "
                  f"(container {host.container_name})")
            for line in probe.stdout.splitlines():
                print(f"      {line}")
        point_hosts_at(workdir, hosts, user=DEPLOY_USER)
        servqr = args.spec.resolve() == DEFAULT_SPEC.resolve() and core_ready
        if servqr:
            say("Staging the PostgreSQL 15 image for the host's future Docker engine (no registry here)")
            started = time.monotonic()
            for host in hosts.values():
                stage_images(host, images)
            print(f"   done in {time.monotonic() - started:.1f}s")
        for host in hosts.values():
            # The host as operators have it: a deploy user with sudo, no root login.
            host.add_sudo_user(DEPLOY_USER)
            host.disable_root_login()

        say("reconcile --version")
        run_reconcile(["--version"])

        if not core_ready:
            say("The core has not landed yet: `reconcile --help` has no `plan` command. Stopping here.")
            return 0

        say(f"reconcile plan / apply / plan against the test host, with {source} ({workdir})")
        rc_plan = run_reconcile(["plan", str(workdir)])
        rc_apply = run_reconcile(["apply", str(workdir)])
        rc_again = run_reconcile(["plan", "--detailed-exitcode", str(workdir)])
        healthy = True
        if servqr:
            say("Health checks from the architecture's Monitoring Points")
            for name, host in hosts.items():
                checks = [*health_checks(host), https_from_outside(host)]
                print(f"   {name}:")
                print(summary(checks))
                healthy = healthy and all(c.ok for c in checks)
        say(f"done in {time.monotonic() - t0:.0f}s")
        print(
            f"   plan exit {rc_plan}, apply exit {rc_apply}, "
            f"second plan exit {rc_again} (0 = nothing left to do)"
            + ("" if not servqr else f", health {'ok' if healthy else 'FAILED'}")
        )
        return 0 if (rc_plan, rc_apply, rc_again) == (0, 0, 0) and healthy else 1
    except TestbedError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        with contextlib.suppress(Exception):  # e.g. BrokenPipeError: clean up regardless
            say("Removing the test host(s)")
        cleanup_session()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
