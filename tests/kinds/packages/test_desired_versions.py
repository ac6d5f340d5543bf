"""What a package's desired and observed state are, from facts captured on a test host
(fixtures/observe-bookworm.txt): installed -> candidate, pins, holds, lists age."""

from __future__ import annotations

from pathlib import Path

from reconciler_providers.packages.apt import parse_observation
from reconciler_providers.packages.provider import FACTS, Package, PackagesProvider, package_state

from reconciler.provider import HostContext
from reconciler.sensitive import KNOWN_AFTER_APPLY
from reconciler.transport import LocalTransport

FIXTURES = Path(__file__).parent / "fixtures"
PROVIDER = PackagesProvider()


def ctx(lists_age: int) -> HostContext:
    facts = parse_observation((FIXTURES / "observe-bookworm.txt").read_text())
    assert facts.updated is not None
    facts.now = facts.updated + lists_age
    context = HostContext("web", LocalTransport("web"))
    context.scratch[FACTS] = facts
    return context


def desired(lists_age: int = 60, **spec: object) -> object:
    return PROVIDER.desired(Package.model_validate(spec), ctx(lists_age))


def test_present_keeps_the_installed_version_and_takes_the_candidate_when_missing() -> None:
    assert desired(name="curl") == {"version": "7.88.1-10+deb12u15"}
    assert desired(name="nginx") == {"version": "1.22.1-9+deb12u11"}


def test_a_name_apt_does_not_know_is_known_after_apply() -> None:
    assert desired(name="nginxx") == {"version": KNOWN_AFTER_APPLY}


def test_latest_trusts_the_candidate_only_from_lists_younger_than_lists_max_age() -> None:
    assert desired(name="curl", state="latest") == {"version": "7.88.1-10+deb12u15"}
    assert desired(2 * 86400, name="curl", state="latest") == {"version": KNOWN_AFTER_APPLY}
    assert desired(2 * 3600, name="curl", state="latest", lists_max_age="1h") == {
        "version": KNOWN_AFTER_APPLY}


def test_a_pin_is_the_version_and_hold_is_managed_only_when_set() -> None:
    assert desired(name="curl", version="7.88.1-10+deb12u5", hold=True) == {
        "version": "7.88.1-10+deb12u5", "held": True}
    assert desired(name="curl", state="absent") is None


def test_observed_state_of_installed_held_removed_and_unknown_packages() -> None:
    facts = ctx(60).scratch[FACTS]
    assert package_state(facts, "sl", None) == {"version": "5.02-1+b1", "held": True, "prune": False}
    assert package_state(facts, "nginx", None) is None  # dpkg remembers it, not installed
    assert package_state(facts, "nginxx", None) is None
    # Removed, configuration files kept: absent, unless the spec asks for a purge.
    assert package_state(facts, "nginx-common", Package(name="nginx-common")) is None
    purge = Package(name="nginx-common", state="absent", purge=True)
    assert package_state(facts, "nginx-common", purge) == {"status": "config-files"}
