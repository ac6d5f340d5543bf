"""Rendering a ``Service`` into unit-file text and environment-file text (pure functions).

The unit never carries environment values: they go to a root-only environment file,
so a ``${secret:...}`` in ``environment`` is never world-readable (unit files are
0644 and ``systemctl show -p Environment`` answers any user).
"""

from __future__ import annotations

import hashlib
import re

from .hardening import directive_lines
from .model import Limits, Service, unit_reference

HEADER = ("# Managed by reconciler; do not edit. Changes are overwritten on the next apply.\n"
          "# Source: services:{name} in the reconciler spec.\n")

# systemd command-line words that need no quoting (see systemd.service(5), "Command lines").
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")


def digest(text: str) -> str:
    """How file contents are compared: ``sha256:HEX`` of the UTF-8 text."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def escape_specifiers(value: str) -> str:
    """``%`` starts a specifier (``%h``, ``%n``) in almost every unit setting; ``%%`` is a literal %."""
    return value.replace("%", "%%")


def quote_exec_word(word: str) -> str:
    """One literal argument for ExecStart=: no ``$VAR`` expansion, no specifiers, no
    splitting. systemd unquotes C-style inside double quotes."""
    word = escape_specifiers(word).replace("$", "$$")
    if _PLAIN_WORD.match(word) and word != ";":
        return word
    escaped = (word.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\t", "\\t").replace("\r", "\\r"))
    return f'"{escaped}"'


def exec_line(exec_: list[str] | str) -> str:
    if isinstance(exec_, str):
        return exec_.strip()  # systemd's own syntax, as the user wrote it
    return " ".join(quote_exec_word(w) for w in exec_)


def _limit_lines(limits: Limits) -> list[str]:
    lines: list[str] = []
    if limits.memory_max is not None:
        lines.append(f"MemoryMax={limits.memory_max}")
    if limits.cpu_quota is not None:
        lines.append(f"CPUQuota={limits.cpu_quota}")  # no specifiers here: "%%" would be refused
    if limits.nofile is not None:
        lines.append(f"LimitNOFILE={limits.nofile}")
    if limits.tasks_max is not None:
        lines.append(f"TasksMax={limits.tasks_max}")
    return lines


def render_unit(service: Service) -> str:
    """The full text of /etc/systemd/system/NAME.service, header included. Raw ``unit``
    text is used as written, below the header."""
    header = HEADER.format(name=service.name)
    if service.unit is not None:
        return header + "\n" + service.unit.strip("\n") + "\n"
    assert service.exec is not None  # the model refuses a service with neither
    unit = ["[Unit]", f"Description={escape_specifiers(service.description or service.name)}"]
    for directive, refs in (("After", service.after), ("Requires", service.requires),
                            ("Wants", service.wants)):
        if refs:
            unit.append(f"{directive}=" + " ".join(unit_reference(r) for r in refs))

    svc = ["[Service]", f"Type={service.type}", f"ExecStart={exec_line(service.exec)}"]
    if service.remain_after_exit:
        svc.append("RemainAfterExit=yes")
    if service.working_directory:
        svc.append(f"WorkingDirectory={escape_specifiers(service.working_directory)}")
    if service.user:
        svc.append(f"User={service.user}")
    if service.group:
        svc.append(f"Group={service.group}")
    # Later files win: the spec's own `environment` overrides the shared environment file.
    if service.environment_file:
        svc.append(f"EnvironmentFile={escape_specifiers(service.environment_file)}")
    if service.environment:
        svc.append(f"EnvironmentFile={service.env_path}")
    svc.append(f"Restart={service.restart}")
    if service.restart_sec is not None:
        svc.append(f"RestartSec={service.restart_sec}")
    sandbox = directive_lines(service.hardening)
    if sandbox:
        svc += ["", f"# Sandboxing (hardening: {service.hardening.profile})", *sandbox]
    limits = _limit_lines(service.limits)
    if limits:
        svc += ["", "# Resource limits (limits:)", *limits]

    install = ["[Install]", "WantedBy=multi-user.target"]
    return header + "\n" + "\n".join([*unit, "", *svc, "", *install]) + "\n"


def env_text(value: str | bool | int | float) -> str:
    """A spec value as the string the process sees (YAML booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def quote_env_value(value: str) -> str:
    """Double-quoted for an EnvironmentFile=. Inside double quotes systemd removes a
    backslash before one of ``"\\`$`` and keeps newlines; it expands nothing."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return f'"{escaped}"'


def render_env_file(name: str, values: dict[str, str]) -> str:
    lines = [f"# Managed by reconciler; do not edit. Environment of {name}.service (services:{name})."]
    lines += [f"{key}={quote_env_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def parse_env_file(text: str) -> dict[str, str]:
    """Parse an EnvironmentFile= the way systemd does (systemd.exec(5)): comments start
    with # or ;, values are unquoted, "double quoted" (backslash escapes for ``"\\`$``
    and line continuation) or 'single quoted' (verbatim), and may span lines inside
    quotes. Lines without ``=`` are ignored."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        # Start of a line: skip blanks and comments.
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] in "#;":
            i = _line_end(text, i)
            continue
        eq = text.find("=", i)
        nl = _line_end(text, i)
        if eq == -1 or eq > nl:
            i = nl
            continue
        key = text[i:eq].strip()
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        value, i = _parse_value(text, i)
        if key:
            out[key] = value
    return out


def _line_end(text: str, i: int) -> int:
    nl = text.find("\n", i)
    return len(text) if nl == -1 else nl + 1


def _parse_value(text: str, i: int) -> tuple[str, int]:
    n = len(text)
    if i < n and text[i] == "'":
        close = text.find("'", i + 1)
        close = n if close == -1 else close
        return text[i + 1:close], _line_end(text, min(close + 1, n)) if close < n else n
    if i < n and text[i] == '"':
        buf: list[str] = []
        i += 1
        while i < n and text[i] != '"':
            if text[i] == "\\" and i + 1 < n:
                nxt = text[i + 1]
                if nxt == "\n":
                    pass  # line continuation
                elif nxt in '"\\`$':
                    buf.append(nxt)
                else:
                    buf.append("\\" + nxt)
                i += 2
                continue
            buf.append(text[i])
            i += 1
        return "".join(buf), _line_end(text, min(i + 1, n)) if i < n else n
    buf = []
    while i < n and text[i] != "\n":
        if text[i] == "\\" and i + 1 < n:
            if text[i + 1] != "\n":
                buf.append(text[i + 1])
            i += 2
            continue
        buf.append(text[i])
        i += 1
    return "".join(buf).rstrip(" \t\r"), min(i + 1, n)
