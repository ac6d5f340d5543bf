"""The host agent's file operations never follow a symlink a non-root user could plant.

Run against the agent as a local subprocess (``LocalTransport``, the same program as
over SSH), as root, in a temporary tree where "uid 1000" owns a directory and plants
links in it (``lchown``). A root-owned link in a directory only root can write (like
``/var/run -> /run``) is followed; anything else is refused, with the path in the
message, and the link's target is never touched.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.transport import LocalTransport
from reconciler.transport.ops import DirEnsure, FileWrite

USER = 1000

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")


@pytest.fixture
def transport() -> Iterator[LocalTransport]:
    t = LocalTransport("local")
    try:
        yield t
    finally:
        t.close()


def fingerprint(path: Path) -> tuple[int, int, int, str]:
    st = path.stat()
    return st.st_uid, st.st_gid, st.st_mode, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/secret/shadow (root, 0640), tmp/user (owned by uid 1000, 0755)."""
    os.chmod(tmp_path, 0o755)
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    (secret / "shadow").write_text("root:$6$hash:19000::::::\n")
    os.chmod(secret / "shadow", 0o640)
    user = tmp_path / "user"
    user.mkdir()
    os.chown(user, USER, USER)
    return tmp_path


def plant(link: Path, target: Path, uid: int = USER) -> None:
    link.symlink_to(target)
    os.lchown(link, uid, uid)


def test_parent_symlink_planted_by_a_user_is_refused(transport: LocalTransport, tree: Path) -> None:
    plant(tree / "user" / "conf", tree / "secret")
    before = fingerprint(tree / "secret" / "shadow")
    [error] = transport.write_files([FileWrite(str(tree / "user/conf/shadow"), b"owned\n", "0666", "1000")])
    assert error == f"parent {tree}/user/conf is a symlink owned by uid {USER}; refusing"
    assert fingerprint(tree / "secret" / "shadow") == before
    [error] = transport.ensure_dirs([DirEnsure(str(tree / "user/conf/sub"), "1000", "1000", "0777")])
    assert error is not None and "is a symlink owned by uid 1000; refusing" in error
    [error] = transport.remove([str(tree / "user/conf/shadow")])
    assert error is not None and "refusing" in error
    assert (tree / "secret" / "shadow").exists()
    st = transport.stat([str(tree / "user/conf/shadow")])[str(tree / "user/conf/shadow")]
    assert st is not None and st.error is not None and "refusing" in st.error


def test_root_link_in_a_user_writable_directory_is_refused(transport: LocalTransport, tree: Path) -> None:
    plant(tree / "user" / "conf", tree / "secret", uid=0)
    [error] = transport.write_files([FileWrite(str(tree / "user/conf/shadow"), b"x")])
    assert error == (f"parent {tree}/user/conf is a symlink in a directory that non-root users can write; "
                     "refusing")


def test_root_link_in_a_root_only_directory_is_followed(transport: LocalTransport, tree: Path) -> None:
    # Like /var/run -> /run: nobody but root could have planted or swapped it.
    (tree / "run").mkdir()
    (tree / "var").mkdir()
    (tree / "var" / "run").symlink_to("../run")
    assert transport.write_files([FileWrite(str(tree / "var/run/app.pid"), b"1\n")]) == [None]
    assert (tree / "run" / "app.pid").read_text() == "1\n"


def test_final_symlink_is_replaced_not_followed(transport: LocalTransport, tree: Path) -> None:
    plant(tree / "user" / "app.conf", tree / "secret" / "shadow")
    before = fingerprint(tree / "secret" / "shadow")
    assert transport.write_files([FileWrite(str(tree / "user/app.conf"), b"mine\n", "0600")]) == [None]
    assert not (tree / "user" / "app.conf").is_symlink()
    assert (tree / "user" / "app.conf").read_text() == "mine\n"
    assert fingerprint(tree / "secret" / "shadow") == before
    # A file read never follows one either.
    plant(tree / "user" / "peek", tree / "secret" / "shadow")
    [(_path, value)] = transport.read_files([str(tree / "user/peek")]).items()
    assert not isinstance(value, bytes) and value is not None and "symlink" in value.message


def test_directory_flipped_to_a_symlink_is_refused(transport: LocalTransport, tree: Path) -> None:
    plant(tree / "user" / "data", tree / "secret")
    [error] = transport.ensure_dirs([DirEnsure(str(tree / "user/data"), "1000", "1000", "0777")])
    assert error == f"{tree}/user/data is a symlink (owned by uid {USER}); refusing to follow it"
    assert (tree / "secret").stat().st_mode & 0o777 == 0o700
    assert (tree / "secret").stat().st_uid == 0
    # Removing it as a file removes the link, never what it points to.
    assert transport.remove([str(tree / "user/data")]) == [None]
    assert (tree / "secret" / "shadow").exists()


def test_writes_are_atomic_and_leave_no_temporary_files(transport: LocalTransport, tree: Path) -> None:
    target = tree / "user" / "deep" / "er" / "app.conf"
    errors = transport.write_files([FileWrite(str(target), b"v1\n", "0640", "1000", "0"),
                                    FileWrite(str(tree / "user/x"), b"", owner="nosuchuser"),
                                    FileWrite(str(tree / "user/y"), b"y", after=1)])
    assert errors[0] is None
    assert errors[1] == f"{tree}/user/x: unknown user 'nosuchuser'"
    assert errors[2] == f"{tree}/user/y: not written, because {tree}/user/x was not"
    st = target.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (USER, 0, 0o640)
    assert (tree / "user" / "deep").stat().st_uid == 0  # made by root, for root
    assert sorted(p.name for p in (tree / "user").iterdir()) == ["deep"]


def test_leftovers_of_an_interrupted_write_are_swept_and_nothing_else(transport: LocalTransport,
                                                                       tree: Path) -> None:
    """An agent killed mid-write (KillMode=mixed SIGKILLs a controller's agent) leaves
    ``.NAME.reconciler-XXXXXXXXXXXX``; the next write in that directory removes it, and
    only what matches the pattern, is a regular root-owned file with one link."""
    conf = tree / "conf"
    conf.mkdir()
    leftover = conf / ".app.conf.reconciler-0123456789ab"
    leftover.write_bytes(b"half a fi")
    other_leftover = conf / ".old.conf.reconciler-abcdef012345"  # another file's: swept too
    other_leftover.write_bytes(b"")
    users_file = conf / ".notes.reconciler-0123456789ab"
    users_file.write_bytes(b"mine")
    os.chown(users_file, USER, USER)  # not ours: kept
    planted = conf / ".link.reconciler-0123456789ab"
    plant(planted, tree / "secret" / "shadow")  # a symlink: kept, and its target untouched
    linked = conf / ".hard.reconciler-0123456789ab"
    os.link(leftover, linked)  # two links: kept (and so is the leftover it links to)
    alike = conf / ".app.conf.reconciler-0123"  # not the pattern: kept
    alike.write_bytes(b"")
    before = fingerprint(tree / "secret" / "shadow")

    assert transport.write_files([FileWrite(str(conf / "app.conf"), b"whole\n")]) == [None]
    assert (conf / "app.conf").read_bytes() == b"whole\n"
    assert sorted(p.name for p in conf.iterdir()) == sorted(
        ["app.conf", leftover.name, users_file.name, planted.name, linked.name, alike.name])
    os.unlink(linked)  # the leftover now has one link: swept by the next write
    assert transport.write_files([FileWrite(str(conf / "app.conf"), b"again\n")]) == [None]
    assert sorted(p.name for p in conf.iterdir()) == sorted(
        ["app.conf", users_file.name, planted.name, alike.name])
    assert fingerprint(tree / "secret" / "shadow") == before
