"""The ``reconcile`` command line.

``reconcile [PATH]`` applies; ``--dry-run`` turns any apply into a plan. Exit
codes: 0 success with nothing left to do, 1 error, 2 changes pending (with
``--detailed-exitcode``), 130 interrupted. Providers and the controller add
subcommands through the ``reconciler.commands`` entry-point group.

On a terminal, ``apply`` shows the plan and asks for confirmation (``--yes`` /
``--auto-approve`` skip it), draws live progress per host and prints one result
list; off a terminal (pipes, CI, the controller) it never asks and draws nothing.

Start-up matters (``reconcile --version`` answers in well under 0.1 s): this module
imports only the standard library at load time; the engine, the spec loader,
rich and the plugins' subcommands are imported by the commands that use them.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from reconciler import __version__
from reconciler.commands import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, SPEC_HELP, add_log_options

if TYPE_CHECKING:
    from reconciler.plan import Plan
    from reconciler.spec import LoadedSpec

Handler = Callable[[argparse.Namespace], int]

EXIT_INTERRUPTED = 130
CORE_COMMANDS = ("validate", "plan", "apply", "schema", "completion")
# Log events the text output already shows (each change, each host error, the end of
# an apply): printed again as log lines they would say everything twice.
SHOWN_EVENTS = frozenset({"change", "plan failed", "apply finished"})


# ------------------------------------------------------------------------------------------
# the parser

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
    parser.add_argument("--serial", metavar="N", type=_serial,
                        help='roll out in batches of N hosts per stage: 1, "25%%", or a ramp "1,50%%" '
                             "(overrides the spec's rollout.serial; docs/fleet.md)")
    parser.add_argument("--max-fail-percentage", type=int, metavar="P", choices=range(0, 101),
                        help="stop the rollout when more than P%% of a batch's hosts fail (default: the "
                             "spec's, else 0)")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="colour the output (default auto: on a terminal, unless NO_COLOR is set; "
                             "FORCE_COLOR forces it)")


def build_parser(*, plugins: bool = True) -> argparse.ArgumentParser:
    """The whole command line. ``plugins=False`` leaves out the subcommands of the
    ``reconciler.commands`` entry points (loading them imports their modules), for
    runs of a core command."""
    parser = argparse.ArgumentParser(
        prog="reconcile",
        description="Declarative host reconciler: converge Linux hosts to a YAML spec.\n\n"
                    "  reconcile [PATH]            apply the spec (same as `reconcile apply PATH`)\n"
                    "  reconcile --dry-run [PATH]  show the plan only (same as `reconcile plan PATH`)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 ok and nothing to do, 1 error, 2 changes pending (with --detailed-exitcode), "
               "130 interrupted.")
    parser.add_argument("--version", action="version", version=f"reconcile {__version__}")
    add_log_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check a spec without touching any host",
                       description="Load the spec and report every mistake as "
                                   "file:line:column: field: reason.")
    p.add_argument("path", nargs="?", help=SPEC_HELP)
    p.add_argument("--output", choices=["text", "json"], default="text", help="output format")
    add_log_options(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show what apply would change (touches nothing)",
                       description="Observe every host and show what apply would change, field by field, "
                                   "with texts (files, units, sites, scripts) as unified diffs.")
    p.add_argument("path", nargs="?", help=SPEC_HELP)
    p.add_argument("--out", metavar="FILE", help="save the plan; `reconcile apply FILE` applies exactly it")
    _run_options(p)
    add_log_options(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("apply", help="converge the hosts to the spec (or to a saved plan)",
                       description="Plan, then apply. On a terminal the plan is shown and you are asked to "
                                   "confirm (unless --yes; the host locks are held while it asks); off a "
                                   "terminal, with --output json or for a saved plan it applies without "
                                   "asking. Ctrl-C stops after the change under way, reports what was and "
                                   "was not applied, and releases the host locks (exit 130).")
    p.add_argument("path", nargs="?", help=SPEC_HELP + ", or a plan saved with `plan --out`")
    p.add_argument("--dry-run", action="store_true", help="plan only; change nothing")
    p.add_argument("-y", "--yes", "--auto-approve", dest="yes", action="store_true",
                   help="apply without asking, also on a terminal")
    _run_options(p)
    add_log_options(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("schema", help="print the spec's JSON Schema (for editors)",
                       description="The JSON Schema of a whole spec, or with --file of one file of a "
                                   "directory spec (every top-level key optional). See docs/editors.md.")
    p.add_argument("--file", action="store_true",
                   help="the schema of one file of a directory spec: every top-level key optional")
    add_log_options(p)
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)",
                       description="Print the completion script for a shell; for example "
                                   "`reconcile completion bash > /etc/bash_completion.d/reconcile`.")
    p.add_argument("shell", choices=["bash", "zsh", "fish"], help="the shell")
    p.set_defaults(func=cmd_completion)

    if plugins:
        from importlib.metadata import entry_points

        for ep in sorted(entry_points(group="reconciler.commands"), key=lambda e: e.name):
            register = ep.load()
            register(sub)
    return parser


# ------------------------------------------------------------------------------------------
# helpers

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


def _load_spec(path: str | None, output: str = "text") -> LoadedSpec | None:
    from reconciler.commands import load_spec_or_report

    return load_spec_or_report(path, output)


def _color(args: argparse.Namespace) -> bool:
    from reconciler.terminal import use_color

    return use_color(getattr(args, "color", "auto"), sys.stdout)


def _emit_plan(plan: Plan, args: argparse.Namespace) -> None:
    if args.output == "json":
        print(json.dumps(plan.to_json(), indent=2))
    else:
        from reconciler.render import render_plan

        print(render_plan(plan, color=_color(args)))


def _plan_exit(plan: Plan, args: argparse.Namespace) -> int:
    if plan.has_errors or plan.refused:
        return EXIT_ERROR
    if plan.has_changes and args.detailed_exitcode:
        return EXIT_CHANGES
    return EXIT_OK


# ------------------------------------------------------------------------------------------
# commands

def cmd_validate(args: argparse.Namespace) -> int:
    spec = _load_spec(args.path, args.output)
    if spec is None:
        return EXIT_ERROR
    if args.output == "json":
        print(json.dumps({"valid": True, "hosts": list(spec.hosts), "resources": len(spec.entries)},
                         indent=2))
    else:
        print(f"Spec {spec.path} is valid: {len(spec.hosts)} host(s), {len(spec.entries)} resource(s).")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from reconciler.schema import file_schema, spec_schema

    print(json.dumps(file_schema() if args.file else spec_schema(), indent=2))
    return EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    from reconciler.completion import completion_script

    print(completion_script(build_parser(), args.shell))
    return EXIT_OK


def _import_engine() -> None:
    """Import the engine with rich hidden (the transports below it may import structlog,
    which would load rich) and apply the pending log set-up if they did import it
    (see reconciler.logs)."""
    from reconciler.logs import apply_if_imported
    from reconciler.terminal import rich_hidden

    with rich_hidden():
        import reconciler.engine  # noqa: F401
    apply_if_imported()


def _serial(text: str) -> list[int | str]:
    """``--serial 1``, ``25%``, or a ramp ``1,50%``."""
    sizes: list[int | str] = []
    for part in text.split(","):
        part = part.strip()
        if part.isdigit() and int(part) >= 1:
            sizes.append(int(part))
        elif part.endswith("%") and part[:-1].isdigit() and 1 <= int(part[:-1]) <= 100:
            sizes.append(part)
        else:
            raise argparse.ArgumentTypeError(f"{part!r}: expected a number of hosts or a percentage "
                                             "(1-100%)")
    return sizes


def _run_options_for(args: argparse.Namespace, revision: str, **extra: Any) -> Any:
    from reconciler.engine import RunOptions

    return RunOptions(hosts=args.host, replace=frozenset(args.replace), revision=revision,
                      lock_wait=args.lock_timeout, serial=args.serial,
                      max_fail_percentage=args.max_fail_percentage, **extra)


def cmd_plan(args: argparse.Namespace) -> int:
    _import_engine()
    from reconciler.engine import Engine

    spec = _load_spec(args.path)
    if spec is None:
        return EXIT_ERROR
    with Engine(spec, _run_options_for(args, spec_revision(spec.path))) as engine:
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
    from reconciler.errors import StalePlan
    from reconciler.plan import FORMAT_VERSION

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
    from reconciler.errors import StalePlan

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


def _print_batch(batch: Any, total: int) -> None:
    """One line per batch of a rollout as it finishes (off a terminal: a log to follow)."""
    state = f"FAILED: {', '.join(batch.failed)}" if batch.failed else "ok"
    print(f"batch {batch.number}/{total} ({', '.join(batch.hosts)}): {state}", file=sys.stderr, flush=True)


@contextmanager
def _graceful_interrupt(stop: threading.Event) -> Iterator[None]:
    """While applying, the first Ctrl-C (SIGINT) only sets ``stop``: the change under
    way finishes and the rest are reported as not applied. A second one aborts at once
    (KeyboardInterrupt; the host locks are still released on the way out)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nInterrupted: finishing the change under way, then stopping "
              "(press Ctrl-C again to abort at once).", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_apply(args: argparse.Namespace) -> int:
    from reconciler.errors import StalePlan
    from reconciler.terminal import interactive

    saved = _read_saved_plan(args.path)
    spec_path = saved["spec_path"] if saved else args.path
    if saved and not args.host:
        args.host = [h["host"] for h in saved["hosts"]]
    if saved:
        args.replace = list(dict.fromkeys([*args.replace, *_saved_replacements(saved)]))
    _import_engine()
    from reconciler.engine import Engine

    spec = _load_spec(spec_path)
    if spec is None:
        return EXIT_ERROR
    if saved:
        try:
            _check_saved_spec(saved, spec)
        except StalePlan as exc:
            print(f"error: refusing to apply {args.path}: {exc}", file=sys.stderr)
            return EXIT_ERROR
    stop = threading.Event()
    color = _color(args)
    with Engine(spec, _run_options_for(args, spec_revision(spec.path), stop=stop)) as engine:
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
        text = args.output == "text"
        if text:
            _emit_plan(plan, args)
        if plan.has_changes and text and not args.yes and not saved and interactive():
            from reconciler.terminal import confirm

            hosts = sorted({c.host for c in plan.changes})
            if not confirm(f"Do you want to apply these changes to {', '.join(hosts)}?"):
                print("Apply cancelled; nothing was changed.")
                return EXIT_ERROR
        return _apply_and_report(engine, plan, args, stop, color)


def _apply_and_report(engine: Any, plan: Plan, args: argparse.Namespace, stop: threading.Event,
                      color: bool) -> int:
    from reconciler.logs import get_logger
    from reconciler.report import ApplyReport, HostReport
    from reconciler.terminal import maybe_progress, use_color

    text = args.output == "text"
    if not plan.has_changes:
        # Nothing to apply; hosts whose planning failed still make the run fail.
        report = ApplyReport([HostReport(h.host, error=h.error) for h in plan.hosts])
    else:
        totals = {h.host: len(h.changes) for h in plan.hosts}
        live = text and sys.stderr.isatty()
        with maybe_progress(totals, enabled=live, color=use_color(args.color, sys.stderr)) as progress, \
                _graceful_interrupt(stop):
            if progress is not None:
                engine.options.progress = progress.update
            report = engine.apply_rollout(on_batch=None if live else _print_batch)
    if args.output == "json":
        print(json.dumps({"plan": plan.to_json(), "apply": report.to_json()}, indent=2))
    elif plan.has_changes or not report.ok:
        from reconciler.render import render_report

        shown = {h.host: h.error for h in plan.hosts if h.error}  # the plan above printed these
        print(render_report(report, color=color, shown_errors=shown))
    get_logger("reconciler.cli").info(
        "apply finished", ok=report.ok, revision=engine.options.revision or None,
        commands=engine.commands_run())
    if report.interrupted or stop.is_set():
        return EXIT_INTERRUPTED
    return EXIT_OK if report.ok else EXIT_ERROR


# ------------------------------------------------------------------------------------------
# the command word

class UnknownCommand(Exception):
    pass


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings (of the parser and its subcommands) that take a value."""
    found: set[str] = set()
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers.extend(action.choices.values())
    for p in parsers:
        for action in p._actions:
            if action.option_strings and action.nargs != 0:
                found.update(action.option_strings)
    return found


def _command_word(argv: Sequence[str], value_options: set[str]) -> int | None:
    """Index of the first word that is not an option or an option's value."""
    skip = False
    for n, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--":
            return n + 1 if n + 1 < len(argv) else None
        if arg.startswith("-"):
            skip = "=" not in arg and arg in value_options
            continue
        return n
    return None


def normalise_argv(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``reconcile [opts] [PATH]`` means apply; ``reconcile --dry-run`` means plan.
    A word that is neither a command nor an existing path is a mistyped command."""
    if any(a in ("-h", "--help", "--version") for a in argv[:1]):
        return argv
    known = _subcommands(parser)
    n = _command_word(argv, _value_options(parser))
    if n is None:
        return argv if any(a in ("-h", "--help") for a in argv) else ["apply", *argv]
    word = argv[n]
    if word in known:
        return argv
    if not os.path.exists(word):
        close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
        if close:
            raise UnknownCommand(f"unknown command {word!r}; did you mean {close[0]!r}?")
        if "/" not in word and "." not in word:
            raise UnknownCommand(f"unknown command {word!r} (and no such spec path); commands: "
                                 + ", ".join(sorted(known)))
    return ["apply", *argv]


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def _needs_plugins(argv: Sequence[str]) -> bool:
    """Whether the command line may name a plugin's subcommand (or asks for help,
    which lists them): only then are the entry points loaded."""
    core = build_parser(plugins=False)
    n = _command_word(argv, _value_options(core))
    if n is None:
        return any(a in ("-h", "--help") for a in argv)
    word = argv[n]
    return word not in CORE_COMMANDS and not os.path.exists(word)


# ------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--version"]:
        print(f"reconcile {__version__}")
        return EXIT_OK
    from reconciler.terminal import PipeGuard, rich_hidden

    if not isinstance(sys.stdout, PipeGuard):
        sys.stdout = PipeGuard(sys.stdout)
    if not isinstance(sys.stderr, PipeGuard):
        sys.stderr = PipeGuard(sys.stderr)
    from reconciler.errors import ReconcilerError
    from reconciler.logs import configure

    # Modules below the provider contract (the transports) may import structlog,
    # which would load rich with it.
    with rich_hidden():
        from reconciler.provider import ProviderLoadError

    try:
        parser = build_parser(plugins=_needs_plugins(args_list))
        args = parser.parse_args(normalise_argv(args_list, parser))
    except ProviderLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except UnknownCommand as exc:
        print(f"reconcile: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    verbose = getattr(args, "verbose", 0) - (1 if getattr(args, "quiet", False) else 0)
    hidden = SHOWN_EVENTS if getattr(args, "output", "text") == "text" and verbose <= 0 else frozenset()
    # Core commands import structlog only when something is logged (reconciler.logs);
    # a plugin's subcommand may log through structlog directly, so it gets it at once.
    configure(fmt=getattr(args, "log_format", "auto"), verbose=verbose, hidden_events=hidden,
              now=getattr(args, "command", None) not in (None, *CORE_COMMANDS))
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
        print("\ninterrupted; nothing more was started and the host locks were released", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
