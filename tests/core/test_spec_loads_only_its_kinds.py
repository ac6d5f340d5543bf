"""A spec loads the providers of the kinds it names, not every installed one
(importing a kind's modules and building its models is most of a run's start-up):

* a files-only spec imports the files provider and nothing of the other kinds;
* a kind comes with every provider registered from the same module, so a singleton
  that it implies (``nginx`` for ``nginx_sites``) is still put in effect;
* a top-level key that names no kind loads every provider, so its diagnostic lists
  every kind exactly as before;
* a provider whose entry point is not named after its kind is still found (then by
  loading every provider).
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from reconciler import provider as provider_module
from reconciler.provider import load_providers
from reconciler.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
GROUP = "reconciler.providers"


def write(spec_dir: Path, text: str) -> Path:
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "spec.yaml").write_text(text)
    return spec_dir


def test_files_only_spec_imports_no_other_kind(tmp_path: Path) -> None:
    spec = write(tmp_path / "spec", "hosts:\n  web: {connect: local}\n"
                                    "files:\n  - {path: /srv/app.conf, content: hi}\n")
    probe = ("import json, sys\n"
             "from reconciler.spec import load_spec\n"
             f"spec, diags = load_spec({str(spec)!r})\n"
             "assert spec is not None, [str(d) for d in diags.items]\n"
             "kinds = sorted({m.split('.')[1] for m in sys.modules\n"
             "                if m.startswith('reconciler_providers.') and m.count('.') >= 1})\n"
             "print(json.dumps({'providers': list(spec.providers), 'imported': kinds}))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=True)
    data = json.loads(proc.stdout)
    assert data["providers"] == ["files"]
    assert set(data["imported"]) <= {"files", "common"}, data["imported"]


def test_implied_singleton_comes_with_its_kind(tmp_path: Path) -> None:
    spec_dir = write(tmp_path / "spec", "hosts:\n  web: {connect: local}\n"
                                        "nginx_sites:\n  - {name: app, server_names: [app.example.com]}\n")
    spec, diags = load_spec(str(spec_dir))
    assert spec is not None, [str(d) for d in diags.items]
    assert {"nginx", "nginx_sites"} <= set(spec.providers)
    assert "nginx" in {e.kind for e in spec.entries if e.implied}


def test_unknown_key_lists_every_kind(tmp_path: Path) -> None:
    spec_dir = write(tmp_path / "spec", "hosts:\n  web: {connect: local}\n"
                                        "files:\n  - {path: /srv/a, content: x}\n"
                                        "filez:\n  - {path: /srv/b, content: y}\n")
    spec, diags = load_spec(str(spec_dir))
    assert spec is None
    _, with_all = load_spec(str(spec_dir), load_providers())
    assert [str(d) for d in diags.sorted()] == [str(d) for d in with_all.sorted()]
    [error] = diags.errors
    assert str(error).endswith("filez: unknown field; expected one of hosts, vars, groups, rollout, stack, "
                               "adopt, "
                               + ", ".join(load_providers()))


def test_entry_point_named_otherwise_is_still_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    labelled = (EntryPoint("a-label", "reconciler_providers.files:FilesProvider", GROUP),
                EntryPoint("directories", "reconciler_providers.directories:DirectoriesProvider", GROUP))
    monkeypatch.setattr(provider_module, "_entry_points", lambda: labelled)
    spec_dir = write(tmp_path / "spec", "hosts:\n  web: {connect: local}\n"
                                        "files:\n  - {path: /srv/a, content: x}\n")
    spec, diags = load_spec(str(spec_dir))
    assert spec is not None, [str(d) for d in diags.items]
    assert set(spec.providers) == {"files", "directories"}
    assert [e.address for e in spec.entries] == ["files:/srv/a"]
