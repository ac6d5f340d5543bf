"""Controller subcommands: ``watch``, ``status``, ``history`` and ``install-service``.

Loaded through the ``reconciler.commands`` entry point (``register(subparsers)``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from reconciler.commands import EXIT_ERROR, EXIT_OK, add_log_options, add_spec_argument
from reconciler.controller.config import (
    DEFAULT_STATE_DIR,
    REPO_ENV,
    WEBHOOK_SECRET_ENV,
    ControllerConfig,
    default_config_path,
    load_config,
)
from reconciler.controller.report import render_history, render_status
from reconciler.controller.state import StateStore
from reconciler.sensitive import redact_urls

# (dest, flag, type, help) of every setting that watch and install-service share.
_SETTINGS: list[tuple[str, str, Any, str]] = [
    ("repo", "--repo", str, "git URL or local path of the spec repository (or $RECONCILER_REPO); "
                            "install-service keeps a URL with credentials out of the unit"),
    ("branch", "--branch", str, "branch to follow (default main)"),
    ("path", "--path", str, "spec directory or file inside the repository (default: the root)"),
    ("host", "--host", str, "pull mode: apply only this host of the spec, on this machine (auto: the host "
                            "named like this machine; docs/fleet.md)"),
    ("interval", "--interval", str, "fetch interval, e.g. 30s (default 30s)"),
    ("drift_interval", "--drift-interval", str, "plan-again interval to find drift (default 60s)"),
    ("listen", "--listen", str, "address of /healthz, /metrics, /hooks/git (default 127.0.0.1:9109; off)"),
    ("webhook_secret_file", "--webhook-secret-file", str,
     "file with the shared secret for POST /hooks/git (or set $RECONCILER_WEBHOOK_SECRET; "
     "install-service passes it to the service in a root-only environment file)"),
    ("allowed_signers", "--allowed-signers", str, "ssh allowed_signers file trusted for commit signatures"),
    ("gpg_home", "--gpg-home", str, "GNUPGHOME with the OpenPGP keys trusted for commit signatures"),
    ("drift_correction", "--drift-correction", str,
     "when to correct drift: windows (default: when the sync windows allow), always, never"),
    ("health_grace", "--health-grace", str,
     "how long an applied revision has to become healthy (default 30s)"),
    ("timezone", "--timezone", str, "time zone of the sync windows' cron expressions (default UTC)"),
]
_SWITCHES: list[tuple[str, str, bool, str]] = [
    ("require_signed", "--require-signed", True, "refuse commits without a trusted signature"),
    ("watch_local", "--no-watch-local", False,
     "do not watch a local repository (fetch on the interval only)"),
    ("watch_events", "--no-watch-events", False,
     "no file or Docker event watching (drift on the interval only)"),
]


def _state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", metavar="DIR",
                        help=f"the controller's state directory (default {DEFAULT_STATE_DIR})")


def _settings_options(parser: argparse.ArgumentParser) -> None:
    _state_dir_option(parser)
    parser.add_argument("--config", metavar="FILE",
                        help="controller.yaml with these settings, sync windows and health checks "
                             "(default: STATE_DIR/controller.yaml when present); flags win")
    for dest, flag, kind, text in _SETTINGS:
        parser.add_argument(flag, dest=dest, type=kind, metavar=dest.upper().split("_")[-1], help=text)
    for dest, flag, value, text in _SWITCHES:
        parser.add_argument(flag, dest=dest, action="store_const", const=value, default=None, help=text)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("watch", help="GitOps controller: follow a git branch and keep the hosts on it",
                              description="Fetch the branch on an interval, on a webhook and at once for a "
                                          "local repository; validate, plan and apply each new commit; roll "
                                          "back failures; correct drift between commits.")
    _settings_options(p)
    p.add_argument("--once", action="store_true", help="one pass (fetch, apply, drift check), then exit")
    add_log_options(p)
    p.set_defaults(func=cmd_watch)

    p = subparsers.add_parser("status", help="what the controller applied last, its last error, "
                                              "pending drift")
    _state_dir_option(p)
    p.add_argument("--output", choices=["text", "json"], default="text")
    add_log_options(p)
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("history", help="the controller's runs: commits applied, refused, "
                                               "rolled back, drift corrected; scheduled host jobs' "
                                               "results (backups, restore drills)")
    _state_dir_option(p)
    p.add_argument("--limit", type=int, default=20, metavar="N",
                   help="the last N entries (default 20; 0 = all)")
    p.add_argument("--output", choices=["text", "json"], default="text")
    add_log_options(p)
    p.set_defaults(func=cmd_history)

    p = subparsers.add_parser("fleet", help="the fleet's controllers (pull mode): `fleet status`",
                              description="Commands about every host's controller at once.")
    actions = p.add_subparsers(dest="fleet_action", metavar="ACTION", required=True)
    p = actions.add_parser("status", help="every host's applied revision, last result and drift in one table",
                           description="Read each host's controller status over its connection and show "
                                       "which hosts lag behind the reference revision. Exit 0 all on it, "
                                       "2 a host lags, failed or has no controller, 1 a host is unreachable.")
    add_spec_argument(p)
    p.add_argument("--host", action="append", metavar="NAME", help="only this host (repeatable)")
    p.add_argument("--revision", metavar="SHA", help="the revision every host should be on (default: the "
                                                     "commit the spec is at, else the newest head fetched)")
    _state_dir_option(p)
    p.add_argument("--output", choices=["text", "json"], default="text")
    add_log_options(p)
    p.set_defaults(func=cmd_fleet_status)

    p = subparsers.add_parser("install-service", help="install and start the controller as a systemd service")
    _settings_options(p)
    p.add_argument("--unit-name", default="reconciler-controller.service", help="systemd unit name")
    p.add_argument("--no-start", action="store_true", help="write and enable the unit, do not (re)start it")
    p.add_argument("--print", action="store_true", dest="print_only", help="print the unit; change nothing")
    add_log_options(p)
    p.set_defaults(func=cmd_install_service)


def _state_dir(args: argparse.Namespace) -> str:
    return str(args.state_dir or DEFAULT_STATE_DIR)


def _config(args: argparse.Namespace) -> ControllerConfig:
    state_dir = _state_dir(args)
    overrides: dict[str, Any] = {dest: getattr(args, dest, None) for dest, *_ in [*_SETTINGS, *_SWITCHES]}
    grace = overrides.pop("health_grace")
    if grace is not None:
        overrides["health"] = {"grace": grace}
    overrides["state_dir"] = state_dir
    return load_config(args.config or default_config_path(state_dir), overrides)


def cmd_watch(args: argparse.Namespace) -> int:
    from reconciler.controller.loop import Controller

    config = _config(args)
    controller = Controller(config)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        controller.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return controller.run(once=args.once)


def _read_status(args: argparse.Namespace) -> Any:
    store = StateStore(Path(_state_dir(args)))
    status = store.read_status()
    if status is None:
        print(f"error: no controller state in {store.root} "
              f"(has `reconcile watch --state-dir {store.root}` run?)", file=sys.stderr)
    return status


def cmd_status(args: argparse.Namespace) -> int:
    status = _read_status(args)
    if status is None:
        return EXIT_ERROR
    if args.output == "json":
        print(json.dumps(status.to_json(), indent=2))
    else:
        print(render_status(status))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    store = StateStore(Path(_state_dir(args)))
    if not store.root.is_dir():
        print(f"error: no controller state in {store.root}", file=sys.stderr)
        return EXIT_ERROR
    limit = max(0, args.limit)
    entries = store.read_history(limit or None)
    if args.output == "json":
        print(json.dumps(entries, indent=2))
    else:
        compacted = store.history.summary()["compacted"] if not limit else 0
        print(render_history(entries, compacted))
    return EXIT_OK


def cmd_fleet_status(args: argparse.Namespace) -> int:
    from reconciler.cli import spec_revision
    from reconciler.commands import load_spec_or_report
    from reconciler.controller import fleetstatus

    spec = load_spec_or_report(args.path)
    if spec is None:
        return EXIT_ERROR
    hosts = [h for h in spec.fleet.ordered(spec.hosts) if not args.host or h in args.host]
    unknown = sorted(set(args.host or ()) - set(spec.hosts))
    if unknown:
        print(f"error: unknown host(s) {', '.join(unknown)}", file=sys.stderr)
        return EXIT_ERROR
    statuses = fleetstatus.read_fleet(spec, hosts, _state_dir(args))
    wanted = args.revision or spec_revision(spec.path).removesuffix("-dirty")
    reference = fleetstatus.reference_revision(statuses, wanted)
    if args.output == "json":
        print(json.dumps(fleetstatus.to_json(statuses, reference), indent=2))
    else:
        print(fleetstatus.table(statuses, reference))
    return fleetstatus.exit_code(statuses, reference)


def service_secrets(args: argparse.Namespace, config: ControllerConfig,
                    environ: Mapping[str, str]) -> dict[str, str]:
    """What the service needs that must not be in its unit (which any user may read):
    a repository URL carrying credentials, and a webhook secret given at install time
    through $RECONCILER_WEBHOOK_SECRET (a --webhook-secret-file is passed by path)."""
    secrets: dict[str, str] = {}
    if args.repo is not None and redact_urls(config.repo) != config.repo:
        secrets[REPO_ENV] = config.repo
    env_secret = environ.get(WEBHOOK_SECRET_ENV, "").strip()
    if env_secret and not config.webhook_secret_file:
        secrets[WEBHOOK_SECRET_ENV] = env_secret
    return secrets


def watch_argv(args: argparse.Namespace, config: ControllerConfig,
               secrets: Mapping[str, str] | None = None) -> list[str]:
    """The ``reconcile watch`` arguments the service runs with: the flags given here,
    with paths made absolute (the service's working directory is /). A setting in
    ``secrets`` reaches the service through its environment file instead."""
    argv = ["watch", "--state-dir", str(Path(config.state_dir).resolve())]
    if args.config:
        argv += ["--config", str(Path(args.config).resolve())]
    for dest, flag, _kind, _text in _SETTINGS:
        value = getattr(args, dest, None)
        if value is None or (dest == "repo" and REPO_ENV in (secrets or {})):
            continue
        if dest in ("repo", "webhook_secret_file", "allowed_signers", "gpg_home") and os.path.exists(value):
            value = str(Path(value).resolve())
        argv += [flag, str(value)]
    for dest, flag, _value, _text in _SWITCHES:
        if getattr(args, dest, None) is not None:
            argv.append(flag)
    return [*argv, "--log-format", "json"]


def cmd_install_service(args: argparse.Namespace) -> int:
    from reconciler.controller import service

    config = _config(args)  # refuse bad settings now, not in a restart loop
    config.webhook_secret(os.environ)
    config.status_page.token()
    from reconciler.controller.notifications import Notifications

    Notifications.from_config(config, os.environ)  # secret files readable, Apprise there when asked for
    secrets = service_secrets(args, config, os.environ)
    exec_argv = [*service.reconcile_executable(), *watch_argv(args, config, secrets)]
    env_path = service.environment_file_path(args.unit_name)
    unit = service.render_unit(exec_argv, repo=config.repo, environment_file=env_path if secrets else None)
    if args.print_only:
        print(unit, end="")
        if secrets:
            print(f"# {env_path} (mode 0600) would hold: {', '.join(secrets)}")
        return EXIT_OK
    Path(config.state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    path = service.install(unit, unit_name=args.unit_name, start=not args.no_start, environment=secrets)
    action = "enabled" if args.no_start else "enabled and started"
    print(f"Installed {path}; {args.unit_name} is {action}.\n"
          + (f"  secrets: {env_path} (root only: {', '.join(secrets)})\n" if secrets else "")
          + f"  status:  reconcile status --state-dir {config.state_dir}\n"
          f"  logs:    journalctl -u {args.unit_name}")
    return EXIT_OK
