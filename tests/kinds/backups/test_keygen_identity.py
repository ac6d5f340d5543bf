"""`reconcile backup keygen` writes the operator's age identity (0600, never over an
existing file) and prints its recipient; what is encrypted to that recipient is
opened with the file by the same loader `recover` uses."""

from __future__ import annotations

import stat
from pathlib import Path

import pyrage
from reconciler_providers.backups.recovery import load_identities

from tests.kinds.backups.support import reconcile


def test_keygen_writes_a_private_identity_and_prints_its_recipient(tmp_path: Path) -> None:
    path = tmp_path / "operator.age"
    proc = reconcile("backup", "keygen", "--identity", path)
    recipient = proc.stdout.strip()
    assert recipient.startswith("age1") and len(recipient) == 62
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = pyrage.encrypt(b"the dump", [pyrage.x25519.Recipient.from_str(recipient)])
    assert pyrage.decrypt(sealed, load_identities(path)) == b"the dump"
    refused = reconcile("backup", "keygen", "--identity", path, check_code=1)
    assert "refusing to overwrite" in refused.stderr
