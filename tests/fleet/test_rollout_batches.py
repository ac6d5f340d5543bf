"""Rolling applies, the pure part: stages from cross-host dependencies, batches of
``serial`` hosts (numbers, percentages, ramps), the failure threshold, and the plan of
a spec with ``rollout:`` as reconcile and the controller both use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.engine import host_dependencies
from reconciler.rollout import RolloutSpec, plan_rollout, split, stages, too_many_failed
from reconciler.spec import load_spec

FLEET = Path(__file__).parent / "fixtures" / "spec"


def test_stages_follow_dependencies() -> None:
    deps = {"lb": {"b1", "b2"}, "b1": {"db"}, "b2": {"db"}, "db": set(), "other": set()}
    assert stages(["lb", "b2", "b1", "db", "other"], deps) == [["db", "other"], ["b1", "b2"], ["lb"]]
    assert stages(["x", "y"], {"x": {"y"}, "y": {"x"}})[-1] == ["x", "y"]  # a cycle: last, together


@pytest.mark.parametrize(("serial", "expected"), [
    (1, [[1], [2], [3], [4], [5]]),
    (2, [[1, 2], [3, 4], [5]]),
    ("40%", [[1, 2], [3, 4], [5]]),
    ("10%", [[1], [2], [3], [4], [5]]),
    ("100%", [[1, 2, 3, 4, 5]]),
    ([1, "50%"], [[1], [2, 3], [4, 5]]),
    ([1, 3], [[1], [2, 3, 4], [5]]),
])
def test_batches(serial: object, expected: list[list[int]]) -> None:
    hosts = [str(n) for n in range(1, 6)]
    assert split(hosts, serial) == [[str(n) for n in b] for b in expected]  # type: ignore[arg-type]


def test_threshold_is_more_than_the_percentage() -> None:
    assert too_many_failed(1, 3, 0)
    assert not too_many_failed(0, 3, 0)
    assert not too_many_failed(1, 3, 34)
    assert too_many_failed(2, 3, 34)
    assert not too_many_failed(3, 3, 100)


def test_bad_sizes_are_refused() -> None:
    for bad in (0, "0%", "101%", "half", [], [1, "x"]):
        with pytest.raises(ValidationError):
            RolloutSpec.model_validate({"serial": bad})


def test_the_fleet_spec_rolls_database_then_backends_then_balancer() -> None:
    spec, _ = load_spec(str(FLEET))
    assert spec is not None
    deps = host_dependencies(spec)
    assert deps["lb"] == {"backend-1", "backend-2", "backend-10"}
    assert deps["backend-2"] == {"db"}
    plan = plan_rollout(list(spec.hosts), deps, RolloutSpec(serial=1))
    assert plan.batches == (("db",), ("backend-1",), ("backend-2",), ("backend-10",), ("lb",))
    assert plan.rolling and plan.max_fail_percentage == 0
    unrolled = plan_rollout(list(spec.hosts), deps, None)
    assert not unrolled.rolling and unrolled.max_fail_percentage == 100
    assert unrolled.batches == (("db",), ("backend-1", "backend-2", "backend-10"), ("lb",))
    overridden = plan_rollout(list(spec.hosts), deps, RolloutSpec(serial=1), serial=["50%"],
                              max_fail_percentage=50)
    assert overridden.batches[1] == ("backend-1",) and overridden.max_fail_percentage == 50
