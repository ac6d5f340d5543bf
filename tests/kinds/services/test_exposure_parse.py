"""Scores from ``systemd-analyze security`` output (pure parsing), and the scoring-only
drop-in that makes an offline score of a planned unit match the running manager's."""

from __future__ import annotations

import io
import tarfile

from reconciler_providers.common.exposure import (
    SCORING_DROPIN,
    _implies_private_mounts,
    archive,
    parse_scores,
)

# SCORE_SCRIPT's output on a Debian 12 test host: a planned unit, a live one, a unit
# that is not loaded (no score), and a stray line.
OUTPUT = ("@@exposure planned:web.service 1.1 OK\n"
          "@@exposure live:web.service 5.4 MEDIUM\n"
          "@@exposure live:gone.service \n"
          "noise\n"
          "@@exposure dropin:nginx.service 2.6 OK\n")


def test_scores_are_parsed_and_unknown_ones_left_out() -> None:
    assert parse_scores(OUTPUT) == {"planned:web.service": "1.1 OK", "live:web.service": "5.4 MEDIUM",
                                    "dropin:nginx.service": "2.6 OK"}


def test_mount_namespace_settings_imply_private_mounts() -> None:
    assert _implies_private_mounts("[Service]\nProtectSystem=full\n")
    assert _implies_private_mounts("[Service]\nReadWritePaths=/srv\n")
    assert not _implies_private_mounts("[Service]\nProtectSystem=no\nNoNewPrivileges=yes\n")
    assert not _implies_private_mounts("[Service]\nPrivateTmp=yes\nPrivateMounts=no\n")  # stated: as is


def test_archive_holds_units_and_drop_in_directories() -> None:
    data = archive({"a.service": "[Service]\n", f"a.service.d/{SCORING_DROPIN}": "x",
                    "a.service.d/b.conf": "y"})
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert [(m.name, m.isdir()) for m in tar.getmembers()] == [
            ("a.service", False), ("a.service.d", True), (f"a.service.d/{SCORING_DROPIN}", False),
            ("a.service.d/b.conf", False)]
