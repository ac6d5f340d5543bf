"""``reconcile schema`` prints the spec's JSON Schema; ``reconcile validate`` accepts
good specs (ours, and every spec under examples/ and specs/) without touching a host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.provider import load_providers

ROOT = Path(__file__).resolve().parents[2]
GOOD = Path(__file__).parent / "fixtures" / "good_spec"


def spec_dirs() -> list[Path]:
    """Every directory under examples/ and specs/ that holds spec YAML at its top level."""
    found = []
    for base in (ROOT / "examples", ROOT / "specs"):
        if base.is_dir():
            for d in sorted(p for p in base.iterdir() if p.is_dir()):
                if any(d.glob("*.yaml")) or any(d.glob("*.yml")):
                    found.append(d)
    return found


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_schema_is_a_json_schema_of_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "schema")
    assert code == 0, err
    schema: dict[str, Any] = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "reconciler spec"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert "hosts" in schema["required"]
    assert set(load_providers()) | {"hosts", "vars", "stack", "adopt", "groups", "rollout"} == set(
        schema["properties"])

    defs = schema["$defs"]
    host = defs["HostSpec"]
    assert host["required"] == ["connect"] and host["additionalProperties"] is False
    assert host["properties"]["host_key"]["enum"] == ["check", "accept-new"]
    files = defs["File"]
    assert files["additionalProperties"] is False
    assert files["required"] == ["path"]
    assert files["properties"]["mode"]["type"] == "string"
    assert files["properties"]["mode"]["default"] == "0644"
    assert schema["properties"]["files"]["items"] == {"$ref": "#/$defs/File"}
    secrets = defs["Secret"]
    assert set(secrets["required"]) == {"name", "path"}
    assert secrets["properties"]["alphabet"]["enum"] == ["alphanumeric", "hex", "base64url", "printable"]


def test_validate_accepts_a_good_multi_file_spec(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(GOOD))
    assert (code, err) == (0, "")
    assert out == f"Spec {GOOD} is valid: 2 host(s), 4 resource(s).\n"
    code, out, _ = run(capsys, "validate", "--output", "json", str(GOOD))
    assert code == 0
    assert json.loads(out) == {"valid": True, "hosts": ["web", "db"], "resources": 4}


def test_validate_of_a_missing_path_is_a_clear_error(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    code, out, err = run(capsys, "validate", str(tmp_path / "nope"))
    assert code == 1 and out == ""
    assert f"spec path '{tmp_path / 'nope'}' does not exist" in err
    code, _, err = run(capsys, "validate", str(tmp_path))
    assert code == 1
    assert f"no *.yaml files in '{tmp_path}'" in err


@pytest.mark.parametrize("spec_dir", spec_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_validate_accepts_the_project_specs(spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(spec_dir))
    assert code == 0, err
    assert " is valid: " in out
    assert "error" not in err


def test_there_is_a_project_spec_to_validate() -> None:
    assert spec_dirs(), "no spec under examples/ or specs/"
