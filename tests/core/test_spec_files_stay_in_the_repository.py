"""A spec may only read files inside its root (the git work tree holding it, else the
spec directory), symbolic links resolved first, and a refusal never shows the
content. Before the fix ``template: ../../root/.ssh/id_ed25519`` or a spec file
linked to ``/proc/self/environ`` was read, and YAML or validation errors quoted it.

Unit-level here (``validate``); ``tests/kinds/files/test_template_outside_repository_refused.py``
shows the same on a real host (nothing is written)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.specfiles import find_spec_root
from tests.support.specs import LOCAL_HOSTS, errors, validate, write_files

SECRET = "TOPSECRET-controller-key-material"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the repository, standing for the controller's key."""
    secret = tmp_path / "controller" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text(f"hosts: {SECRET}\n")
    return secret


def repo_with(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = write_files(tmp_path / "repo", files)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def test_the_root_is_the_work_tree_else_the_spec_directory(tmp_path: Path) -> None:
    repo = repo_with(tmp_path, {"specs/app/hosts.yaml": LOCAL_HOSTS})
    assert find_spec_root(repo / "specs" / "app") == repo
    assert find_spec_root(repo / "specs" / "app" / "hosts.yaml") == repo
    plain = write_files(tmp_path / "plain" / "spec", {"hosts.yaml": LOCAL_HOSTS})
    assert find_spec_root(plain) == plain
    assert find_spec_root(plain / "hosts.yaml") == plain


@pytest.mark.parametrize("how", ["relative", "absolute", "symlink"])
def test_a_template_outside_the_repository_is_refused_unread(
        how: str, tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    name = {"relative": os.path.relpath(outside, tmp_path / "repo" / "specs"), "absolute": str(outside),
            "symlink": "templates/key.tpl"}[how]
    repo = repo_with(tmp_path, {"specs/hosts.yaml": LOCAL_HOSTS, "specs/files.yaml":
                                f"files:\n  - path: /srv/copy\n    mode: '0644'\n    template: {name}\n"})
    if how == "symlink":
        (repo / "specs" / "templates").mkdir()
        (repo / "specs" / "templates" / "key.tpl").symlink_to(outside)
    code, lines = validate(repo / "specs", monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == [f"files.yaml:4:5: files[0].template: template {name!r} is outside the spec's "
                             f"repository ({repo}); only files inside it may be read (symbolic links are "
                             "followed before this check)"]
    assert SECRET not in "\n".join(lines)


def test_a_template_linked_inside_the_repository_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    repo = repo_with(tmp_path, {"specs/hosts.yaml": LOCAL_HOSTS, "shared/motd": "hello ${host}\n",
                                "specs/files.yaml": "files:\n  - {path: /srv/motd, template: motd}\n"})
    (repo / "specs" / "motd").symlink_to("../shared/motd")
    code, lines = validate(repo / "specs", monkeypatch, capsys)
    assert (code, errors(lines)) == (0, [])


@pytest.mark.parametrize("target", ["file", "proc"])
def test_a_spec_file_linked_out_of_the_repository_is_refused_unread(
        target: str, tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = repo_with(tmp_path, {"specs/hosts.yaml": LOCAL_HOSTS})
    (repo / "specs" / "evil.yaml").symlink_to(outside if target == "file" else "/proc/self/environ")
    code, lines = validate(repo / "specs", monkeypatch, capsys)
    assert code == 1
    assert errors(lines) == [f"evil.yaml:1:1: evil.yaml is a symbolic link to a file outside the spec's "
                             f"repository ({repo}); it is not read"]
    text = "\n".join(lines)
    assert SECRET not in text and "PATH=" not in text


def test_a_spec_directory_linked_out_of_the_repository_is_refused(tmp_path: Path, outside: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The controller loads ``WORKTREE/specs``: a commit that makes ``specs`` a link to
    /etc (or anywhere) must not make it read that directory's YAML files."""
    repo = repo_with(tmp_path, {"README": "x"})
    (repo / "specs").symlink_to(outside.parent)
    (outside.parent / "x.yaml").write_text(f"hosts: {{web: {{connect: local}}}}\nvars: {{k: {SECRET}}}\n")
    monkeypatch.chdir(repo)
    assert main(["validate", "specs"]) == 1
    err = capsys.readouterr().err
    assert "leads out of its repository" in err and SECRET not in err
