"""A spec's stack name: explicit ``stack:``, else its directory's (or single file's)
name, and for the controller the same name from the path inside the repository, so a
revision's checkout directory never becomes the stack. Bad names and ``adopt:``
entries the spec does not declare are spec errors with their position."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.spec import default_stack_name, load_spec, stack_name_in_repo
from tests.support.harness import reconcile

HOSTS = "hosts:\n  web: {connect: local}\n"


def test_default_is_the_directory_or_file_name(tmp_path: Path) -> None:
    (tmp_path / "servqr").mkdir()
    (tmp_path / "servqr" / "spec.yaml").write_text(HOSTS)
    (tmp_path / "site.yaml").write_text(HOSTS)
    (tmp_path / "My App!").mkdir()
    assert default_stack_name(tmp_path / "servqr") == "servqr"
    assert default_stack_name(tmp_path / "site.yaml") == "site"
    assert default_stack_name(tmp_path / "My App!") == "My-App"
    spec, _ = load_spec(str(tmp_path / "servqr"))
    assert spec is not None and spec.stack == "servqr"
    (tmp_path / "servqr" / "stack.yaml").write_text("stack: shop\n")
    spec, _ = load_spec(str(tmp_path / "servqr"))
    assert spec is not None and spec.stack == "shop"


@pytest.mark.parametrize(("repo", "path", "stack"), [
    ("git@git.example:org/infra.git", ".", "infra"),
    ("/srv/repos/infra/", "", "infra"),
    ("https://git.example/org/infra.git", "specs/servqr", "servqr"),
    ("https://git.example/org/infra.git", "specs/servqr/", "servqr"),
    ("https://git.example/org/infra.git", "site.yaml", "site"),
])
def test_the_controller_names_the_stack_from_the_repository_path(repo: str, path: str, stack: str) -> None:
    assert stack_name_in_repo(repo, path) == stack


def test_a_checkout_directory_does_not_name_the_stack(tmp_path: Path) -> None:
    checkout = tmp_path / "worktrees" / "3f9c2a1b0d4e"
    checkout.mkdir(parents=True)
    (checkout / "spec.yaml").write_text(HOSTS)
    spec, _ = load_spec(str(checkout), default_stack=stack_name_in_repo("git@h:org/infra.git", "."))
    assert spec is not None and spec.stack == "infra"


def test_bad_stack_name_and_adopt_are_positioned_errors(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(HOSTS + "stack: ../etc\nadopt: [files:/etc/other.conf]\n"
                    "files:\n  - {path: /srv/x.conf, content: x}\n")
    proc = reconcile("validate", spec, cwd=tmp_path, check_code=1)
    assert proc.stderr.splitlines()[:2] == [
        "spec.yaml:3:1: stack: a stack name is 1-64 letters, digits, '_', '.' or '-', starting with a letter "
        "or digit",
        "spec.yaml:4:9: adopt[0]: adopt names 'files:/etc/other.conf', which this spec does not declare "
        "(write it as kind:id, e.g. files:/etc/app.conf)",
    ], proc.stderr
