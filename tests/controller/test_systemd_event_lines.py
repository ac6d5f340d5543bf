"""Which lines of PID 1's journal (``journalctl -o json``, as a Debian 12 host prints
them) ask the controller for a drift check: state changes of a managed unit and
daemon-reloads; nothing about other units."""

from __future__ import annotations

from reconciler.controller.watchers import unit_event

UNITS = frozenset({"pinger.service"})
# Real lines from a test host (cursor and boot id shortened).
STOPPING = ('{"__MONOTONIC_TIMESTAMP":"3683223683","MESSAGE":"Stopping pinger.service...",'
            '"__REALTIME_TIMESTAMP":"1796156222529063","_BOOT_ID":"49211c57","UNIT":"pinger.service",'
            '"__CURSOR":"s=1"}')
DEACTIVATED = ('{"MESSAGE":"pinger.service: Deactivated successfully.","UNIT":"pinger.service",'
               '"__CURSOR":"s=2"}')
RELOADING = ('{"MESSAGE":"Reloading requested from client PID 812 (\'systemctl\') (unit session-1.scope)...",'
             '"__CURSOR":"s=3"}')
OTHER = ('{"MESSAGE":"Started cron.service - Regular background program processing daemon.",'
         '"UNIT":"cron.service"}')


def test_managed_unit_changes_and_reloads_are_events() -> None:
    assert unit_event(STOPPING, UNITS) == "pinger.service: Stopping pinger.service..."
    assert unit_event(DEACTIVATED, UNITS) == "pinger.service: pinger.service: Deactivated successfully."
    assert (unit_event(RELOADING, UNITS) or "").startswith("systemd: Reloading requested")


def test_other_units_and_garbage_are_not() -> None:
    assert unit_event(OTHER, UNITS) is None
    assert unit_event("not json", UNITS) is None
    assert unit_event("[1, 2]", UNITS) is None
    assert unit_event('{"UNIT": 5, "MESSAGE": null}', UNITS) is None
