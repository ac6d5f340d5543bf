"""Field-level comparison of desired and actual state, via deepdiff.

Only the fields the desired state names are compared: what the spec does not
set is not the reconciler's business. deepdiff's report is converted into our
own ``FieldChange`` values at this boundary.
"""

from __future__ import annotations

from typing import Any

from reconciler.plan import FieldChange
from reconciler.sensitive import KnownAfterApply, Sensitive


def _plain(value: Any) -> Any:
    """``value`` with Sensitive strings as plain ones: a secret in the spec equals the
    same text observed on the host (deepdiff would report the type difference)."""
    if isinstance(value, Sensitive):
        return value.reveal()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _field(path: str, old: Any, new: Any) -> FieldChange:
    """A field change; the old value of a field the spec holds as a secret is a secret too."""
    if isinstance(new, Sensitive) and isinstance(old, str) and not isinstance(old, Sensitive):
        old = Sensitive(old)
    return FieldChange(path, old, new)


def _identical(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (``True`` is not ``1``, ``1`` is
    not ``1.0``): what deepdiff would report no difference for."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _changed_keys(have: dict[Any, Any], want: dict[Any, Any]) -> list[Any]:
    """Top-level keys of two dicts whose values differ, in the desired dict's order and
    then the removed ones. deepdiff's tree view gives each difference's path as a list
    of real keys, so keys with dots, quotes or brackets (``traefik.http.routers``,
    ``it's``) and non-string keys are kept intact."""
    have, want = _plain(have), _plain(want)
    if _identical(have, want):
        return []  # the usual case (a no-op plan): no need to load deepdiff
    # Imported here: deepdiff costs ~20 ms at start-up (up to 0.15 s on a busy machine).
    from deepdiff import DeepDiff

    changed: set[Any] = set()
    # Types are compared strictly, so true -> 1 is a change, as at the top level.
    report = DeepDiff(have, want, view="tree")
    for levels in report.values():
        for level in levels:
            path = level.path(output_format="list")
            if path:
                changed.add(path[0])
    ordered = [k for k in want if k in changed] + [k for k in have if k in changed and k not in want]
    return ordered


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
            changes.extend(_field(f"{key}.{sub}", have.get(sub), want.get(sub))
                           for sub in _changed_keys(have, want))
            continue
        # bool is an int in Python; True must still differ from 1 in a plan.
        if have != want or isinstance(have, bool) != isinstance(want, bool):
            changes.append(_field(key, have, want))
    return changes
