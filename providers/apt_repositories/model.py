"""The ``apt_repositories`` spec: one deb822 ``.sources`` file per repository."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import Field

from reconciler.provider import Issue, Resource

# apt reads only files of sources.list.d whose names are made of these characters
# (and end in .sources); any other file there is silently ignored.
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_URI = re.compile(r"^(https?|file|mirror\+https?|mirror\+file|tor\+https?)://\S*$|^file:/\S*$")
_WORD = re.compile(r"^[^\s#]+$")
ARMOR_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMOR_END = "-----END PGP PUBLIC KEY BLOCK-----"


class AptRepository(Resource):
    """An apt source, written to ``/etc/apt/sources.list.d/NAME.sources`` (deb822) with
    its signing key inside the file (``Signed-By``), so the key trusts this
    repository only, never the whole system.

    The key is given inline (``key``), as an ASCII-armored or binary OpenPGP file in
    the spec's repository (``key_file``, relative to the spec file), or as a keyring
    already on the host (``keyring``, e.g. Debian's own archive keyring).
    """

    name: str = Field(description="File name without .sources: letters, digits, '_', '-', '.'.")
    uris: list[str] = Field(min_length=1, description="Repository URIs (http, https, file).")
    suites: list[str] = Field(min_length=1, description=(
        'Suites (e.g. "bookworm"), or one path ending in "/" for a flat repository.'))
    components: list[str] = Field(default_factory=list, description=(
        'Components (e.g. ["main"]); none for a flat repository.'))
    types: list[Literal["deb", "deb-src"]] = Field(default=["deb"], description="deb and/or deb-src.")
    architectures: list[str] | None = Field(default=None, description="Limit to these architectures.")
    key: str | None = Field(default=None, description="The signing key, ASCII-armored, inline.")
    key_file: str | None = Field(default=None, description=(
        "The signing key as a file of the spec's repository, relative to the spec file."))
    keyring: str | None = Field(default=None, description="A keyring file already on the host.")
    state: Literal["present", "absent"] = Field(default="present", description=(
        "absent: delete the file (only one the reconciler wrote)."))


def validate_repository(r: AptRepository) -> list[Issue]:
    issues: list[Issue] = []
    if not _NAME.match(r.name):
        issues.append(Issue(("name",), f"{r.name!r}: apt ignores sources.list.d files whose names have "
                                       "characters other than letters, digits, '_', '-' and '.'"))
    for i, uri in enumerate(r.uris):
        if not _URI.match(uri):
            issues.append(Issue(("uris", i), f"{uri!r} is not an http(s):// or file: URI"))
    for field_name in ("suites", "components", "architectures"):
        for i, word in enumerate(getattr(r, field_name) or []):
            if not _WORD.match(word):
                issues.append(Issue((field_name, i), f"{word!r} must be one word (no spaces or '#')"))
    flat = [s for s in r.suites if s.endswith("/")]
    if flat and (len(r.suites) > 1 or r.components):
        issues.append(Issue(("suites",), "a flat repository (suite ending in '/') takes exactly one suite "
                                         "and no components"))
    if not flat and not r.components:
        issues.append(Issue(("components",), 'a suite needs components (e.g. ["main"]); only a flat '
                                             "repository (suite ending in '/') has none"))
    keys = [n for n in ("key", "key_file", "keyring") if getattr(r, n) is not None]
    if r.state == "present" and len(keys) != 1:
        issues.append(Issue(("key",), "set exactly one of key (inline), key_file (in the spec's repository) "
                                      "or keyring (on the host): apt must know who signs this repository"))
    if r.key is not None and ARMOR_BEGIN not in r.key:
        issues.append(Issue(("key",), f"expected an ASCII-armored public key ({ARMOR_BEGIN} ...); "
                                      "export one with `gpg --armor --export KEYID`"))
    if r.key_file is not None:
        path = PurePosixPath(r.key_file)
        if path.is_absolute() or ".." in path.parts:
            issues.append(Issue(("key_file",), "must be a path inside the spec's repository, relative to "
                                               "the spec file, without '..' (use keyring for a file on the "
                                               "host)"))
    if r.keyring is not None and not r.keyring.startswith("/"):
        issues.append(Issue(("keyring",), "must be an absolute path on the host"))
    return issues
