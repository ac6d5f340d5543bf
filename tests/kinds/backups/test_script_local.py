"""The rendered backup script on this machine (real sh, tar, gzip, zstd) for a path
source: every compression round-trips; backups made before a change of compression
still restore; a failed run leaves no partial file; the script is valid POSIX sh."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from reconciler_providers.backups.provider import Backup, render_script


def script_for(tmp_path: Path, compression: str, name: str = "loc") -> Path:
    backup = Backup.model_validate({"name": name, "schedule": "@daily",
                                    "source": {"paths": [str(tmp_path / "src")]},
                                    "destination": str(tmp_path / "dest"), "compression": compression})
    path = tmp_path / f"backup-{name}-{compression}"
    path.write_text(render_script(backup))
    return path


def run(script: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(script), *args], capture_output=True, text=True, check=check)


def listed(script: Path) -> list[list[str]]:
    return [line.split("\t") for line in run(script, "list").stdout.splitlines()]


@pytest.mark.parametrize(("compression", "suffix"),
                         [("gzip", ".tar.gz"), ("zstd", ".tar.zst"), ("none", ".tar")])
def test_each_compression_round_trips(tmp_path: Path, compression: str, suffix: str) -> None:
    if compression == "zstd" and shutil.which("zstd") is None:
        pytest.fail("zstd is not installed on this machine (apt-get install zstd)")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data.txt").write_text("payload\n")
    script = script_for(tmp_path, compression)
    run(script)
    [[_mtime, _size, status, name]] = listed(script)
    assert status == "ok" and name.endswith(suffix)
    run(script, "restore", name, str(tmp_path / "out"))
    assert (tmp_path / "out" / str(tmp_path / "src").lstrip("/") / "data.txt").read_text() == "payload\n"


def test_backups_restore_after_a_change_of_compression(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "v").write_text("1\n")
    run(script_for(tmp_path, "gzip"))
    later = script_for(tmp_path, "none")
    [[_, _, status, name]] = listed(later)
    assert status == "ok" and name.endswith(".tar.gz")
    run(later, "restore", name, str(tmp_path / "out"))
    assert (tmp_path / "out" / str(tmp_path / "src").lstrip("/") / "v").read_text() == "1\n"


def test_a_failed_run_leaves_no_file_at_all(tmp_path: Path) -> None:
    script = script_for(tmp_path, "gzip")  # src does not exist: tar fails
    proc = run(script, check=False)
    assert proc.returncode == 1
    assert "tar exited 2" in proc.stderr and "no backup was written" in proc.stderr
    assert list((tmp_path / "dest").iterdir()) == []


def test_restore_refuses_names_that_are_not_this_jobs_backups(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    script = script_for(tmp_path, "gzip")
    for bad in ("../etc/passwd", "other-20240101T000000Z.tar.gz", "loc-20240101T000000Z.sql.gz"):
        proc = run(script, "restore", bad, str(tmp_path / "out"), check=False)
        assert proc.returncode != 0 and "FAILED" in proc.stderr, bad
    assert not (tmp_path / "out").exists()


def test_the_script_is_posix_sh(tmp_path: Path) -> None:
    """dash (Debian's /bin/sh) parses it; checkbashisms-style: no bash-only syntax."""
    script = script_for(tmp_path, "gzip")
    subprocess.run(["dash", "-n", str(script)], check=True)
    code = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("#"))
    for bashism in ("[[", "pipefail", "function ", "$'", "<<<", "local "):
        assert bashism not in code, bashism
