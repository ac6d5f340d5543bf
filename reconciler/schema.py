"""JSON Schemas of the spec for editors (``reconcile schema [--file]``).

Two schemas, each with its own ``$id``: the whole spec (``hosts`` required), and one
file of a directory spec, where a file may hold any subset of the top-level keys
(``hosts.yaml`` beside ``app.yaml``). Resources inside a file are still checked in
full: a resource is always declared whole in one file. Editors that use
yaml-language-server pick a schema up from a modeline at the top of the file::

    # yaml-language-server: $schema=../.reconciler/spec-file.schema.json

(see docs/editors.md). The schemas are derived from the providers' models, so a
plugin's kind is in them once it is installed.
"""

from __future__ import annotations

import copy
from typing import Any

SPEC_ID = "urn:reconciler:schema:spec"
FILE_ID = "urn:reconciler:schema:spec-file"


def spec_schema() -> dict[str, Any]:
    """The schema of a whole spec (one file, or every file of a directory merged)."""
    from reconciler.spec import json_schema

    schema = json_schema()
    schema["$id"] = SPEC_ID
    return schema


def file_schema() -> dict[str, Any]:
    """The schema of one file of a directory spec: every top-level key optional."""
    schema = copy.deepcopy(spec_schema())
    schema.pop("required", None)
    schema["$id"] = FILE_ID
    schema["title"] = "reconciler spec file (one file of a directory spec)"
    schema["description"] = ("One file of a reconciler spec directory: any of the top-level keys; the files "
                             "are merged, and together they must define hosts.")
    return schema
