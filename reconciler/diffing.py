"""Field-level comparison of desired and actual state, via deepdiff.

Only the fields the desired state names are compared: what the spec does not
set is not the reconciler's business. deepdiff's report is converted into our
own ``FieldChange`` values at this boundary.
"""

from __future__ import annotations

import re
from typing import Any

from deepdiff import DeepDiff

from reconciler.plan import FieldChange
from reconciler.sensitive import KnownAfterApply

_PATH_PART = re.compile(r"\[('(?:[^'\\]|\\.)*'|\d+)\]")


def _dotted(deepdiff_path: str) -> str:
    out = ""
    for m in _PATH_PART.finditer(deepdiff_path):
        token = m.group(1)
        if token.startswith("'"):
            key = token[1:-1]
            out = f"{out}.{key}" if out else key
        else:
            out += f"[{token}]"
    return out


def diff_states(desired: dict[str, Any], actual: dict[str, Any] | None) -> list[FieldChange]:
    """Changes needed to take ``actual`` to ``desired``, one per top-level field.

    Nested dicts (env, labels) are reported per key, lists as a whole, so a plan
    reads ``env.DB_HOST: "a" -> "b"`` rather than a wall of indices.
    """
    if actual is None:
        return [FieldChange(k, None, v) for k, v in desired.items()]
    changes: list[FieldChange] = []
    for key, want in desired.items():
        have = actual.get(key)
        if isinstance(want, KnownAfterApply):
            changes.append(FieldChange(key, have, want))
            continue
        if isinstance(want, dict) and isinstance(have, dict):
            dd = DeepDiff(have, want, verbose_level=2)
            seen: set[str] = set()
            for report in dd.values():
                paths = report.keys() if isinstance(report, dict) else report
                for p in paths:
                    sub = _dotted(str(p)).split("[", 1)[0].split(".", 1)[0]
                    if sub in seen:
                        continue
                    seen.add(sub)
                    changes.append(FieldChange(f"{key}.{sub}", have.get(sub), want.get(sub)))
            continue
        # bool is an int in Python; True must still differ from 1 in a plan.
        if have != want or isinstance(have, bool) != isinstance(want, bool):
            changes.append(FieldChange(key, have, want))
    return changes
