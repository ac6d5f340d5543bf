"""Property: no spec, however malformed, makes reconcile crash or hang.

Hypothesis starts from valid specs (a small one per core kind under a temporary
directory, and every spec in ``examples/``, all with ``connect: local``), mutates
their data (wrong types, huge values, deleted and added keys, duplicated items) and
then their text (aliases of aliases, deep nesting, tags, control characters, random
bytes), and runs what a user and the controller run on a commit:

* ``reconcile validate``: exit 0 or 1, no traceback, every error at file:line:col;
* ``reconcile plan`` when the spec is valid (``connect: local``, read-only): exit 0
  or 1, no traceback and no "internal error";
* the controller's commit check: commit to a git repository, check the commit out
  with ``GitSource`` and ``load_spec`` it, as the controller does.

Every example has a 60 s alarm: a hang fails it. The run is derandomized with a
fixed budget (``max_examples``, well under a minute on this machine), so CI runs
the same examples every time. Run it longer by hand::

    RECONCILER_FUZZ_EXAMPLES=5000 .venv/bin/pytest -m fuzz -p no:randomly
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli import main
from reconciler.controller.gitsource import GitSource
from reconciler.spec import load_spec

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("RECONCILER_FUZZ_EXAMPLES", "40"))
EXAMPLE_ALARM_SECONDS = 60
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
FUZZ_ROOT = Path(tempfile.gettempdir()) / "reconciler-fuzz-target"  # paths the small seeds manage


def _small_seed() -> dict[str, Any]:
    root = str(FUZZ_ROOT)
    return {
        "hosts": {"local": {"connect": "local", "vars": {"greeting": "hello"}}},
        "vars": {"base": root, "url": "http://127.0.0.1:8080/${greeting}"},
        "directories": [{"path": "${base}/d", "owner": "root", "group": "root", "mode": "0750"}],
        "files": [
            {"path": "${base}/d/a.conf", "content": "a=${greeting}\n", "mode": "0640",
             "depends_on": ["directories:${base}/d"]},
            {"path": "${base}/d/t.conf", "template": "t.tpl"},
            {"path": "${base}/gone", "state": "absent"},
        ],
        "secrets": [{"name": "token", "path": "${base}/d/token", "length": 24}],
    }


def _example_seed(directory: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        for key, value in data.items():
            if isinstance(value, list) and isinstance(merged.get(key), list):
                merged[key] = merged[key] + value
            else:
                merged[key] = value
    hosts = merged.get("hosts") or {"local": {}}
    merged["hosts"] = {name: {"connect": "local", **({"vars": h["vars"]} if h and "vars" in h else {})}
                       for name, h in hosts.items()}
    return merged


SEEDS: dict[str, dict[str, Any]] = {"small": _small_seed()}
for _example in sorted(p for p in EXAMPLES_DIR.iterdir() if p.is_dir() and any(p.glob("*.yaml"))):
    SEEDS[_example.name] = _example_seed(_example)

# ------------------------------------------------------------------------------ strategies

ODD_VALUES = st.sampled_from([
    None, True, 0, -1, 70000, 2**70, 1e308, float("inf"), "", " ", "x" * 5000, "/opt//a", "relative/path",
    "${nope}", "${secret:nope}", "$${escaped}", "${greeting}${greeting}", "0644", 644, "ssh://h:99999",
    "../../../etc/shadow", "/proc/self/environ", "a\nb", "ü", [], {}, [[[[["deep"]]]]], {"k": None},
])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=30))
VALUES = st.one_of(ODD_VALUES, SCALARS, st.lists(SCALARS, max_size=4),
                   st.dictionaries(st.text(max_size=8), SCALARS, max_size=3))


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*prefix, index))


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


@st.composite
def mutated_data(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data: Any = copy.deepcopy(SEEDS[name])
    for _ in range(draw(st.integers(0, 4))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        op = draw(st.sampled_from(["replace", "replace", "delete", "add", "duplicate"]))
        if op == "replace":
            parent[path[-1]] = draw(VALUES)
        elif op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            key = draw(st.sampled_from(["colour", "hosts", "depends_on", "mode", "path", "extra"]))
            parent[key] = draw(VALUES)
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return name, data


def _laughs(levels: int) -> str:
    lines = ["lol:", "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


TEXT_ODDITIES = {
    "none": lambda text, _n: text,
    "alias_bomb": lambda text, n: text + _laughs(3 + n % 8),
    "recursive_alias": lambda text, _n: text + "loop: &me [a, *me]\n",
    "deep_flow": lambda text, n: text + "deep: " + "[" * (10 * n) + "]" * (10 * n) + "\n",
    "deep_block": lambda text, n: (text + "".join(f"{'  ' * i}k{i}:\n" for i in range(5 * n))
                                   + "  " * 5 * n + "x\n"),
    "tags": lambda text, _n: (text + "t1: !!binary zz=\nt2: !!timestamp 2021-02-30\n"
                              "t3: !!python/object:os.system x\n"),
    "big_int": lambda text, n: text + "big: " + "9" * (1000 * n) + "\n",
    "duplicate_key": lambda text, _n: text + "vars: {}\n",
    "merge_key": lambda text, _n: text + "m: &m {a: 1}\nn: {<<: *m, <<: 5}\n",
    "two_documents": lambda text, _n: text + "---\nhosts: {}\n",
    "control_char": lambda text, n: (text[: n * 7 % max(len(text), 1)] + "\x07"
                                     + text[n * 7 % max(len(text), 1):]),
    "tab_indent": lambda text, _n: text.replace("  ", "\t", 1),
    "truncated": lambda text, n: text[: len(text) * n // 12],
}


@st.composite
def spec_text(draw: st.DrawFn) -> tuple[str, bytes]:
    name, data = draw(mutated_data())
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    oddity = draw(st.sampled_from(sorted(TEXT_ODDITIES)))
    text = TEXT_ODDITIES[oddity](text, draw(st.integers(1, 11)))
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=32)) + raw[at:]
    return name, raw


# ------------------------------------------------------------------------------ running


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def hung(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"an example ran longer than {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + err.getvalue()


class Workspace:
    """A git repository with one spec directory per seed (templates included), a bare
    clone and worktrees as the controller keeps them."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        for name in SEEDS:
            spec = self.repo / "specs" / name
            if name == "small":
                spec.mkdir(parents=True)
                (spec / "t.tpl").write_text("t=${greeting}\n")
            else:
                shutil.copytree(EXAMPLES_DIR / name, spec, ignore=shutil.ignore_patterns("*.yaml"))
        self.git("init", "-q", "-b", "main")
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", "seeds")
        state = root / "state"
        self.source = GitSource(str(self.repo), "main", state / "repo.git", state / "worktrees")

    def git(self, *args: str) -> None:
        subprocess.run(["git", "-C", str(self.repo), "-c", "user.email=f@example.test", "-c", "user.name=f",
                        *args], check=True, capture_output=True)

    def commit(self, name: str, raw: bytes) -> str:
        (self.repo / "specs" / name / "spec.yaml").write_bytes(raw)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", "fuzz")
        return self.source.fetch()


@pytest.fixture(scope="module")
def workspace() -> Iterator[Workspace]:
    FUZZ_ROOT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reconciler-fuzz-") as tmp:
        yield Workspace(Path(tmp))


def check_validate(spec_dir: Path) -> bool:
    code, output = run_cli("validate", str(spec_dir))
    assert code in (0, 1), output
    assert "Traceback" not in output, output
    if code == 1:
        lines = [line for line in output.splitlines() if line.strip()]
        body = [line for line in lines[:-1] if not line.startswith("warning: ")
                and "more diagnostic(s) left out" not in line]
        for line in body:
            assert line.split(":", 3)[1].isdigit() and line.split(":", 3)[2].isdigit(), \
                f"an error without file:line:col: {line!r}\n{output}"
    return code == 0


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(case=spec_text())
def test_no_spec_crashes_or_hangs_validate_plan_or_the_commit_check(workspace: Workspace,
                                                                    case: tuple[str, bytes]) -> None:
    name, raw = case
    with alarm(EXAMPLE_ALARM_SECONDS):
        sha = workspace.commit(name, raw)
        spec_dir = workspace.repo / "specs" / name
        valid = check_validate(spec_dir)
        if valid:
            code, output = run_cli("plan", "--color", "never", str(spec_dir))
            assert code in (0, 1), output
            assert "Traceback" not in output and "internal error" not in output, output
        # The controller's commit check: the commit checked out in a worktree, loaded.
        tree = workspace.source.checkout(sha)
        spec, diags = load_spec(str(tree / "specs" / name))
        assert (spec is not None) == valid, [str(d) for d in diags.items]
        workspace.source.prune_worktrees(set())
