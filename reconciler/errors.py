"""The exception hierarchy. Exceptions are for transport faults and bugs; spec and
plan problems travel as Diagnostics. Third-party errors (paramiko, docker,
subprocess) are wrapped here at the boundary with the cause kept."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.diagnostics import Diagnostic


class ReconcilerError(Exception):
    """Base of every error this package raises on purpose."""


class SpecInvalid(ReconcilerError):
    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class TransportError(ReconcilerError):
    """The host could not be reached or the connection broke. Transient."""


class CommandFailed(ReconcilerError):
    """A command on a host exited non-zero. Carries its stderr for the report."""

    def __init__(self, argv: Sequence[str], exit_code: int, stderr: str, stdout: str = "") -> None:
        self.argv = list(argv)
        self.exit_code = exit_code
        self.stderr = stderr
        self.stdout = stdout
        shown = " ".join(_shown_argv(self.argv))
        if len(shown) > 160:
            shown = shown[:157] + "..."
        detail = stderr.strip() or stdout.strip()
        super().__init__(f"`{shown}` exited {exit_code}" + (f": {detail}" if detail else ""))


def _shown_argv(argv: Sequence[str]) -> list[str]:
    """The command as a message shows it: a multi-line ``sh -c`` script (run_script)
    is abbreviated to ``<script>`` so the message leads with its arguments and stderr."""
    if len(argv) >= 3 and argv[0] == "sh" and argv[1] == "-c" and "\n" in argv[2].strip():
        return ["sh", "-c", "<script>", *argv[4:]]  # argv[3] is $0, always "reconciler"
    return list(argv)


class ApplyError(ReconcilerError):
    """A change could not be applied; the message says why in the operator's terms."""


class LockBusy(ReconcilerError):
    """Another run holds the host's lock."""


class StalePlan(ReconcilerError):
    """A saved plan no longer matches the spec or the host."""
