"""The ``reconcile`` command line.

``reconcile [PATH]`` applies; ``--dry-run`` turns any apply into a plan. Exit
codes: 0 success with nothing left to do, 1 error, 2 changes pending (with
``--detailed-exitcode``). Providers and the controller add subcommands through
the ``reconciler.commands`` entry-point group.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import structlog

from reconciler import __version__
from reconciler.commands import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    SPEC_HELP,
    add_log_options,
    load_spec_or_report,
)
from reconciler.engine import Engine, RunOptions
from reconciler.errors import ReconcilerError, StalePlan
from reconciler.logs import configure
from reconciler.plan import FORMAT_VERSION, Change, Plan
from reconciler.provider import ProviderLoadError
from reconciler.render import render_plan, render_report
from reconciler.report import ApplyReport, HostReport, Status
from reconciler.spec import LoadedSpec, json_schema

log = structlog.get_logger("reconciler.cli")

Handler = Callable[[argparse.Namespace], int]


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", action="append", metavar="NAME",
                        help="limit the run to this host (repeatable)")
    parser.add_argument("--output", choices=["text", "json"], default="text", help="output format")
    parser.add_argument("--detailed-exitcode", action="store_true",
                        help="exit 2 when changes are pending, 0 when none, 1 on error")
    parser.add_argument("--replace", action="append", default=[], metavar="ADDRESS",
                        help="force replacement of a resource, e.g. secrets:db_password (repeatable)")
    parser.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for another run's host lock (default 60)")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconcile",
        description="Declarative host reconciler: converge Linux hosts to a YAML spec.\n\n"
                    "  reconcile [PATH]            apply the spec (same as `reconcile apply PATH`)\n"
                    "  reconcile --dry-run [PATH]  show the plan only (same as `reconcile plan PATH`)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 ok and nothing to do, 1 error, 2 changes pending (with --detailed-exitcode).")
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    add_log_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check a spec without touching any host")
    p.add_argument("path", nargs="?", help=SPEC_HELP)
    p.add_argument("--output", choices=["text", "json"], default="text")
    add_log_options(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show what apply would change (touches nothing)")
    p.add_argument("path", nargs="?", help=SPEC_HELP)
    p.add_argument("--out", metavar="FILE", help="save the plan; `reconcile apply FILE` applies exactly it")
    _run_options(p)
    add_log_options(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("apply", help="converge the hosts to the spec (or to a saved plan)")
    p.add_argument("path", nargs="?", help=SPEC_HELP + ", or a plan saved with `plan --out`")
    p.add_argument("--dry-run", action="store_true", help="plan only; change nothing")
    _run_options(p)
    add_log_options(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("schema", help="print the spec's JSON Schema (for editors)")
    add_log_options(p)
    p.set_defaults(func=cmd_schema)

    for ep in sorted(entry_points(group="reconciler.commands"), key=lambda e: e.name):
        register = ep.load()
        register(sub)
    return parser


# ------------------------------------------------------------------------------------------
# helpers

def _color(args: argparse.Namespace, stream: Any = sys.stdout) -> bool:
    mode = getattr(args, "color", "auto")
    return mode == "always" or (mode == "auto" and stream.isatty())


def spec_revision(path: str) -> str:
    """The git commit the spec comes from (12 hex digits, ``-dirty`` when the spec has
    uncommitted changes), or ``""`` outside a git work tree or without git.

    Two plain ``git`` calls: importing gitpython alone costs about 0.1 s per run."""
    target = Path(path).resolve()
    workdir = target if target.is_dir() else target.parent

    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(["git", "-C", str(workdir), *args], capture_output=True, text=True,
                                  timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            return None

    head = git("rev-parse", "--verify", "--quiet", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return ""
    status = git("status", "--porcelain", "--untracked-files=no", "--", str(target))
    dirty = status is not None and status.returncode == 0 and bool(status.stdout.strip())
    return head.stdout.strip()[:12] + ("-dirty" if dirty else "")


def _progress_printer(enabled: bool) -> Callable[[str, int, int, Change, Status | None], None] | None:
    if not enabled:
        return None

    def show(host: str, done: int, total: int, change: Change, status: Status | None) -> None:
        state = "…" if status is None else status.value
        sys.stderr.write(f"\r\033[K[{done}/{total}] {host}: {change.action.symbol} {change.address} {state}")
        if done == total and status is not None:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _options(args: argparse.Namespace, revision: str) -> RunOptions:
    return RunOptions(hosts=args.host, replace=frozenset(args.replace), revision=revision,
                      lock_wait=args.lock_timeout, progress=_progress_printer(sys.stderr.isatty()))


def _emit_plan(plan: Plan, args: argparse.Namespace) -> None:
    if args.output == "json":
        print(json.dumps(plan.to_json(), indent=2))
    else:
        print(render_plan(plan, color=_color(args)))


def _plan_exit(plan: Plan, args: argparse.Namespace) -> int:
    if plan.has_errors:
        return EXIT_ERROR
    if plan.has_changes and args.detailed_exitcode:
        return EXIT_CHANGES
    return EXIT_OK


# ------------------------------------------------------------------------------------------
# commands

def cmd_validate(args: argparse.Namespace) -> int:
    spec = load_spec_or_report(args.path, args.output)
    if spec is None:
        return EXIT_ERROR
    if args.output == "json":
        print(json.dumps({"valid": True, "hosts": list(spec.hosts), "resources": len(spec.entries)},
                         indent=2))
    else:
        print(f"Spec {spec.path} is valid: {len(spec.hosts)} host(s), {len(spec.entries)} resource(s).")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    spec = load_spec_or_report(args.path)
    if spec is None:
        return EXIT_ERROR
    with Engine(spec, _options(args, spec_revision(spec.path))) as engine:
        plan = engine.plan()
        _emit_plan(plan, args)
        if args.out:
            Path(args.out).write_text(json.dumps(plan.to_json(), indent=2) + "\n")
            print(f"\nSaved the plan to {args.out}. To apply exactly it: reconcile apply {args.out}",
                  file=sys.stderr)
        return _plan_exit(plan, args)


def _read_saved_plan(path: str | None) -> dict[str, Any] | None:
    if not path or not Path(path).is_file() or Path(path).suffix in (".yaml", ".yml"):
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (ValueError, OSError):
        return None
    return data if isinstance(data, dict) and "format_version" in data else None


def _check_saved_spec(saved: dict[str, Any], spec: LoadedSpec) -> None:
    """Checks that need no host, done before any host is locked or contacted."""
    if saved["format_version"] != FORMAT_VERSION:
        raise StalePlan(f"the saved plan has format {saved['format_version']}, this reconcile reads "
                        f"{FORMAT_VERSION}; make a new plan")
    if saved["spec_digest"] != spec.digest:
        raise StalePlan("the spec changed since the plan was made; run `reconcile plan` again")


def _saved_replacements(saved: dict[str, Any]) -> list[str]:
    """The --replace addresses the saved plan was made with, so the fresh plan matches it."""
    return [c["address"] for h in saved["hosts"] for c in h["changes"]
            if c["action"] == "replace" and c["reason"] == "replace-requested"]


def _check_saved(saved: dict[str, Any], plan: Plan, spec: LoadedSpec) -> None:
    _check_saved_spec(saved, spec)
    fresh = {h.host: h for h in plan.hosts}
    for host in saved["hosts"]:
        now = fresh.get(host["host"])
        if now is None:
            raise StalePlan(f"host {host['host']} is not in this run")
        if now.observed_digest != host["observed_digest"] or \
                [c.to_json() for c in now.changes] != host["changes"]:
            raise StalePlan(f"host {host['host']} changed since the plan was made; "
                            "run `reconcile plan` again")


def cmd_apply(args: argparse.Namespace) -> int:
    saved = _read_saved_plan(args.path)
    spec_path = saved["spec_path"] if saved else args.path
    if saved and not args.host:
        args.host = [h["host"] for h in saved["hosts"]]
    if saved:
        args.replace = list(dict.fromkeys([*args.replace, *_saved_replacements(saved)]))
    spec = load_spec_or_report(spec_path)
    if spec is None:
        return EXIT_ERROR
    if saved:
        try:
            _check_saved_spec(saved, spec)
        except StalePlan as exc:
            print(f"error: refusing to apply {args.path}: {exc}", file=sys.stderr)
            return EXIT_ERROR
    with Engine(spec, _options(args, spec_revision(spec.path))) as engine:
        plan = engine.plan(lock=not args.dry_run)
        if saved:
            try:
                _check_saved(saved, plan, spec)
            except StalePlan as exc:
                print(f"error: refusing to apply {args.path}: {exc}", file=sys.stderr)
                return EXIT_ERROR
        if args.dry_run:
            _emit_plan(plan, args)
            return _plan_exit(plan, args)
        if args.output == "text":
            _emit_plan(plan, args)
        if not plan.has_changes:
            # Nothing to apply; hosts whose planning failed still make the run fail.
            report = ApplyReport([HostReport(h.host, error=h.error) for h in plan.hosts])
        else:
            if args.output == "text":
                print()
            report = engine.apply()
        if args.output == "json":
            print(json.dumps({"plan": plan.to_json(), "apply": report.to_json()}, indent=2))
        elif plan.has_changes or not report.ok:
            print(render_report(report, color=_color(args)))
        log.info("apply finished", ok=report.ok, revision=engine.options.revision or None,
                 commands=engine.commands_run())
        return EXIT_OK if report.ok else EXIT_ERROR


# ------------------------------------------------------------------------------------------

_COMMANDS = {"validate", "plan", "apply", "schema"}


def _normalise_argv(argv: list[str], known: set[str]) -> list[str]:
    """``reconcile [opts] [PATH]`` means apply; ``reconcile --dry-run`` means plan."""
    for arg in argv:
        if arg in ("-h", "--help", "--version"):
            return argv
        if not arg.startswith("-"):
            return argv if arg in known else ["apply", *argv]
    return ["apply", *argv]


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
    except ProviderLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    args = parser.parse_args(_normalise_argv(args_list, set(sub_action.choices)))
    verbose = getattr(args, "verbose", 0) - (1 if getattr(args, "quiet", False) else 0)
    configure(fmt=getattr(args, "log_format", "auto"), verbose=verbose)
    handler: Handler | None = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return EXIT_ERROR
    try:
        return handler(args)
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
