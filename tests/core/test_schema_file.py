"""``reconcile schema --file``: the schema of one file of a directory spec (every
top-level key optional, its own ``$id``), which every spec file of the repository
(specs/, examples/, the reference examples) satisfies; and the whole-spec schema,
which each spec directory, merged, satisfies. Checked with the jsonschema library."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.schema import FILE_ID, SPEC_ID
from tests.support.harness import reconcile

ROOT = Path(__file__).resolve().parents[2]
# The plugin example's spec uses a kind that exists only once that plugin is installed.
SPEC_DIRS = sorted({p.parent for base in ("specs", "examples", "docs/reference/examples")
                    for p in (ROOT / base).rglob("*.y*ml")
                    if "templates" not in p.parts and "plugin-kind" not in p.parts})


@functools.cache
def schema(*args: str) -> dict[str, Any]:
    """The schema as ``reconcile schema`` prints it (run once per argument list)."""
    data: dict[str, Any] = json.loads(reconcile("schema", *args, check_code=0).stdout)
    jsonschema.Draft202012Validator.check_schema(data)
    return data


def test_file_schema_makes_every_top_level_key_optional() -> None:
    whole, one_file = schema(), schema("--file")
    assert whole["$id"] == SPEC_ID and whole["required"] == ["hosts"]
    assert one_file["$id"] == FILE_ID and "required" not in one_file
    assert one_file["properties"] == whole["properties"]
    jsonschema.validate({"files": [{"path": "/etc/motd", "content": "hi\n"}]}, one_file)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"files": [{"path": "/etc/motd", "colour": "red"}]}, one_file)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"files": []}, whole)  # a whole spec names its hosts


def test_the_repository_has_spec_files_to_check() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in SPEC_DIRS}
    assert {"specs/servqr", "examples/static-site", "docs/reference/examples"} <= names


@pytest.mark.parametrize("spec_dir", SPEC_DIRS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_file_and_every_spec_validates(spec_dir: Path) -> None:
    one_file, whole = schema("--file"), schema()
    merged: dict[str, Any] = {}
    for path in sorted(spec_dir.glob("*.y*ml")):
        data = yaml.safe_load(path.read_text()) or {}
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in jsonschema.Draft202012Validator(one_file).iter_errors(data)]
        assert not errors, f"{path.relative_to(ROOT)}: {errors}"
        for key, value in data.items():
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            elif isinstance(value, dict) and key in ("hosts", "vars"):
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
    if "hosts" in merged:
        jsonschema.validate(merged, whole)
    # else: a layer to copy into another spec (examples/servqr-offsite/specs-servqr); its
    # files are checked one by one above.
