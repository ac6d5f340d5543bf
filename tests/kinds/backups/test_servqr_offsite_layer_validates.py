"""specs/servqr with examples/servqr-offsite/specs-servqr added (as
docs/disaster-recovery.md says) is a valid two-host spec, and the offsite host gets
none of ServQR's resources: only its account, directories and authorized_keys."""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.spec import load_spec
from testbed.dr import write_dr_spec


def test_the_offsite_layer_makes_a_valid_two_host_spec(tmp_path: Path) -> None:
    spec_dir = write_dr_spec(tmp_path / "repo")
    data = yaml.safe_load((spec_dir / "hosts.yaml").read_text())
    data["hosts"] = {
        "servqr": {"connect": "ssh://root@servqr.example.com:22",
                   "vars": {"domain": "servqr.example.com", "offsite_address": "backup.example.com",
                            "offsite_recipient": "age1" + "q" * 58}},
        "offsite": {"connect": "ssh://root@backup.example.com:22"}}
    (spec_dir / "hosts.yaml").write_text(yaml.safe_dump(data))
    spec, diags = load_spec(str(spec_dir))
    assert not diags.has_errors(), [str(d) for d in diags.sorted()]
    on_offsite = sorted(e.address for e in spec.entries_for("offsite"))
    assert on_offsite == [
        "directories:/srv/offsite", "directories:/srv/offsite/servqr", "directories:/srv/offsite/servqr/.ssh",
        "directories:/srv/offsite/servqr/copies", "files:/srv/offsite/servqr/.ssh/authorized_keys",
        "users:servqr-offsite"]
    [backup] = [e for e in spec.entries_for("servqr") if e.address == "backups:servqr-backup"]
    resource = spec.resource_for_host(backup, "servqr")
    assert resource.model_dump()["offsite"][0]["address"] == "backup.example.com"
