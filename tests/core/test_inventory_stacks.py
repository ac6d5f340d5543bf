"""The inventory's storage and ownership rules, as pure data (no host): the owner index
gives each object one stack, a stack sees only its own objects, the index wins over a
stack file that disagrees, ``take`` carries the *created* flag, and the 0.1 single
inventory is read as objects no stack owns yet."""

from __future__ import annotations

import json

import pytest

from reconciler.inventory import LEGACY, Inventory, OwnedObject

OWNERS = json.dumps({"format": 2, "owners": {
    "files:/etc/a.conf": {"stack": "servqr", "created": True},
    "files:/etc/m.conf": {"stack": "monitoring", "created": True},
    "users:prom": {"stack": "monitoring", "created": False},
}, "unclaimed": {}})
SERVQR = json.dumps({"format": 2, "stack": "servqr", "objects": {
    "files:/etc/a.conf": {"kind": "files", "id": "/etc/a.conf", "created": True, "spec_hash": "h1",
                          "revision": "r1", "applied_at": "2024-01-01T00:00:00Z"},
    # Not servqr's in the index (a crash after an adopt moved it): ignored.
    "files:/etc/m.conf": {"kind": "files", "id": "/etc/m.conf", "created": True},
}})
LEGACY_01 = json.dumps({"format": 1, "objects": {
    "files:/etc/a.conf": {"kind": "files", "id": "/etc/a.conf", "created": True, "spec_hash": "old"},
    "files:/etc/old.conf": {"kind": "files", "id": "/etc/old.conf", "created": True, "spec_hash": "o"},
    "directories:/srv/app": {"kind": "directories", "id": "/srv/app", "created": False},
}})


def test_a_stack_sees_its_own_objects_and_who_owns_the_rest() -> None:
    inv = Inventory.parse(OWNERS, SERVQR, stack="servqr")
    assert list(inv.objects) == ["files:/etc/a.conf"]
    assert inv.objects["files:/etc/a.conf"].spec_hash == "h1"
    assert inv.others == {"files:/etc/m.conf": "monitoring", "users:prom": "monitoring"}
    assert inv.ids_of("files") == ["/etc/a.conf"]
    assert inv.owner_of("users:prom") == "monitoring"
    assert inv.owner_of("files:/nowhere") is None
    # The stray entry is dropped from servqr's file at its next write.
    assert set(json.loads(inv.render_stack())["objects"]) == {"files:/etc/a.conf"}


def test_the_index_wins_over_a_stack_file_that_lacks_an_object() -> None:
    # monitoring's file is missing: its objects are still its own, and count as not
    # created (released, never deleted, if they leave its spec).
    inv = Inventory.parse(OWNERS, None, stack="monitoring")
    assert set(inv.objects) == {"files:/etc/m.conf", "users:prom"}
    assert inv.objects["files:/etc/m.conf"].created is True  # from the index
    assert inv.objects["users:prom"].created is False


def test_writing_keeps_other_stacks_entries_and_one_owner_per_object() -> None:
    inv = Inventory.parse(OWNERS, SERVQR, stack="servqr")
    inv.record("files", "/etc/b.conf", created=True, spec_hash="h2")
    inv.forget("files:/etc/a.conf")
    inv.take("files:/etc/m.conf")  # adopt: from monitoring, keeping created
    owners = json.loads(inv.render_owners())["owners"]
    assert owners == {
        "files:/etc/b.conf": {"stack": "servqr", "created": True},
        "files:/etc/m.conf": {"stack": "servqr", "created": True},
        "users:prom": {"stack": "monitoring", "created": False},
    }
    stack = json.loads(inv.render_stack())
    assert stack["stack"] == "servqr" and set(stack["objects"]) == {"files:/etc/b.conf", "files:/etc/m.conf"}
    # Read back from monitoring's side: the adopted file is no longer its own.
    other = Inventory.parse(inv.render_owners(), None, stack="monitoring")
    assert set(other.objects) == {"users:prom"} and other.others["files:/etc/m.conf"] == "servqr"


def test_the_01_inventory_is_unclaimed_until_a_stack_takes_its_objects() -> None:
    inv = Inventory.parse(None, None, LEGACY_01, stack="servqr")
    assert inv.legacy_present and inv.objects == {}
    assert set(inv.unclaimed) == {"files:/etc/a.conf", "files:/etc/old.conf", "directories:/srv/app"}
    assert inv.owner_of("files:/etc/old.conf") == LEGACY
    inv.take("files:/etc/a.conf")
    assert inv.objects["files:/etc/a.conf"] == OwnedObject("files", "/etc/a.conf", True, "old")
    after = json.loads(inv.render_owners())
    assert after["owners"] == {"files:/etc/a.conf": {"stack": "servqr", "created": True}}
    # Nothing lost: what no stack declared waits in the index, with its record.
    assert after["unclaimed"]["files:/etc/old.conf"]["created"] is True
    assert set(after["unclaimed"]) == {"files:/etc/old.conf", "directories:/srv/app"}
    # A later read with the index in place (and 0.1's file still there, e.g. a crash
    # before the rename) does not resurrect what the index already placed.
    again = Inventory.parse(inv.render_owners(), inv.render_stack(), LEGACY_01, stack="monitoring")
    assert again.others == {"files:/etc/a.conf": "servqr"}
    assert set(again.unclaimed) == {"files:/etc/old.conf", "directories:/srv/app"}


@pytest.mark.parametrize(("owners", "stack", "legacy", "names"), [
    ("{", None, None, "/var/lib/reconciler/owners.json"),
    ('{"owners": {"files:/a": "servqr"}}', None, None, "/var/lib/reconciler/owners.json"),
    (None, '{"objects": []}', None, "/var/lib/reconciler/stacks/servqr.json"),
    (None, None, '{"objects": {"files:/a": 3}}', "/var/lib/reconciler/inventory.json"),
])
def test_a_damaged_file_is_an_error_naming_it(owners: str | None, stack: str | None, legacy: str | None,
                                              names: str) -> None:
    with pytest.raises(ValueError, match=f"^{names}: "):
        Inventory.parse(owners, stack, legacy, stack="servqr")
