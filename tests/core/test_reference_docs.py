"""The generated documentation is fresh and complete: docs/reference/<kind>.md and
docs/man/reconcile.1 are what ``python -m reconciler.docs`` writes from the current
models and parser; every field of every built-in kind has a description; the
reference examples form a valid spec; the man page renders."""

from __future__ import annotations

import shutil
import subprocess
import sys
import typing
from pathlib import Path

from pydantic import BaseModel

from reconciler.docs import generated, stale
from reconciler.provider import load_providers

ROOT = Path(__file__).resolve().parents[2]


def test_generated_docs_are_fresh() -> None:
    found = [str(p.relative_to(ROOT)) for p in stale(ROOT)]
    assert not found, f"stale generated docs {found}: run `.venv/bin/python -m reconciler.docs` and commit"


def test_every_kind_has_a_page_with_an_example() -> None:
    pages = generated(ROOT)
    for kind in load_providers():
        page = pages[ROOT / "docs" / "reference" / f"{kind}.md"]
        assert "## Fields" in page and "## Example" in page, kind


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for f in model.model_fields.values():
        for arg in [f.annotation, *typing.get_args(f.annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    _models(inner, seen)


def test_every_field_has_a_description() -> None:
    seen: set[type[BaseModel]] = set()
    for provider in load_providers().values():
        _models(provider.model, seen)
    missing = sorted(f"{m.__name__}.{name}" for m in seen for name, f in m.model_fields.items()
                     if not f.description)
    assert not missing, f"fields without a description: {missing}"


def test_reference_examples_are_one_valid_spec() -> None:
    examples = ROOT / "docs" / "reference" / "examples"
    proc = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(examples)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is valid" in proc.stdout


def test_man_page_renders() -> None:
    page = (ROOT / "docs" / "man" / "reconcile.1").read_text()
    for command in ("validate", "plan", "apply", "schema", "completion", "watch", "backup"):
        assert f"\\fI\\,{command}\\/\\fR" in page, command
    groff = shutil.which("groff")
    if groff is None:
        return  # the text checks above still ran; rendering needs groff
    proc = subprocess.run([groff, "-man", "-Tutf8", "-ww", str(ROOT / "docs/man/reconcile.1")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "reconcile" in proc.stdout, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
