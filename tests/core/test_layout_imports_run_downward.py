"""The house rules of the layout, checked on the source: the core knows no kind, no kind
reaches into the command-line face, every kind is one package, and the built-in kinds
install under this project's name, never as a generic top-level ``providers``."""

from __future__ import annotations

import ast
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, *([node.module] if node.module else [])]))
            elif node.module:
                found.add(node.module)
    return found


def test_the_core_imports_no_provider() -> None:
    kinds = ("providers", "reconciler_providers")
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] in kinds)
                 for p in (ROOT / "reconciler").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_provider_imports_the_command_line_or_the_controller() -> None:
    banned = ("reconciler.cli", "reconciler.controller")
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.startswith(banned))
                 for p in (ROOT / "providers").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_providers_import_each_other_only_relatively() -> None:
    """Inside providers/ the installed name is never spelled, so the folder can be read
    and type-checked as it is in the repository."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "providers").rglob("*.py")
                 if any(m.startswith("reconciler_providers") for m in _imports(p))]
    assert offenders == []


def test_every_kind_is_a_package_and_every_package_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"reconciler_providers": "providers"}
    listed = set(config["packages"])
    on_disk = {"reconciler_providers" + ("." + ".".join(p.parent.relative_to(ROOT / "providers").parts)
                                         if p.parent != ROOT / "providers" else "")
               for p in (ROOT / "providers").rglob("__init__.py")}
    on_disk |= {".".join(p.parent.relative_to(ROOT).parts)
                for p in (ROOT / "reconciler").rglob("__init__.py")}
    assert on_disk == listed
    assert not any(name == "providers" or name.startswith("providers.") for name in listed)
    stray = sorted(p.name for p in (ROOT / "providers").glob("*.py") if p.name != "__init__.py")
    assert stray == [], "a kind's modules live in its own package, not at the top of providers/"


def test_every_registered_kind_loads_from_its_package() -> None:
    eps = {ep.name: ep.value for ep in entry_points(group="reconciler.providers")}
    assert eps, "no provider is registered"
    for name, value in eps.items():
        assert value.startswith("reconciler_providers."), (name, value)
    for ep in entry_points(group="reconciler.providers"):
        cls = ep.load()
        assert cls.__module__.startswith("reconciler_providers."), cls
