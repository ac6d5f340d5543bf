"""Rendering a repository as a deb822 ``.sources`` file, with its key inline.

deb822 multi-line values continue on lines that start with a space, and an empty
line inside a value is written `` .``; apt (>= 2.3.10, Debian 12 has 2.6) accepts
an ASCII-armored key block as the value of ``Signed-By``.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from reconciler.errors import ApplyError

from .model import ARMOR_BEGIN, ARMOR_END, AptRepository

HEADER = "# Managed by reconciler"
SOURCES_DIR = "/etc/apt/sources.list.d"


def sources_path(name: str) -> str:
    return f"{SOURCES_DIR}/{name}.sources"


def _crc24(data: bytes) -> int:
    """The OpenPGP armor checksum (RFC 4880, 6.1)."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(binary: bytes) -> str:
    """ASCII armor for a binary OpenPGP public key (what ``gpg --armor --export`` prints)."""
    body = base64.b64encode(binary).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    checksum = base64.b64encode(_crc24(binary).to_bytes(3, "big")).decode()
    return "\n".join([ARMOR_BEGIN, "", *lines, f"={checksum}", ARMOR_END]) + "\n"


def read_key_file(resource: AptRepository) -> str:
    """The armored key of ``key_file``, which must stay inside the spec file's directory
    (symlinks resolved: a link planted in the repository cannot point elsewhere)."""
    assert resource.key_file is not None
    base = os.path.realpath(resource.source_dir)
    path = os.path.realpath(os.path.join(base, resource.key_file))
    if os.path.commonpath([base, path]) != base:
        raise ApplyError(f"key_file {resource.key_file!r} resolves to {path}, outside the spec's directory "
                         f"{base}; refusing to read it")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ApplyError(f"cannot read key_file {resource.key_file!r}: {exc.strerror}") from exc
    text = data.decode("ascii", "replace")
    if ARMOR_BEGIN in text:
        return text[text.index(ARMOR_BEGIN):]
    if data and data[0] & 0x80:  # an OpenPGP packet header: a binary (gpg --export) key
        return armor(data)
    raise ApplyError(f"key_file {resource.key_file!r} is neither an ASCII-armored nor a binary OpenPGP key")


def _multiline(value: str) -> str:
    lines = [ln.rstrip() for ln in value.strip().splitlines()]
    return "\n".join(f" {ln}" if ln else " ." for ln in lines)


def render_sources(resource: AptRepository) -> str:
    """The whole ``.sources`` file."""
    fields = [("Types", " ".join(resource.types)), ("URIs", " ".join(resource.uris)),
              ("Suites", " ".join(resource.suites))]
    if resource.components:
        fields.append(("Components", " ".join(resource.components)))
    if resource.architectures:
        fields.append(("Architectures", " ".join(resource.architectures)))
    lines = [f"{HEADER}: apt repository {resource.name}. Edits here are overwritten."]
    lines += [f"{k}: {v}" for k, v in fields]
    if resource.keyring is not None:
        lines.append(f"Signed-By: {resource.keyring}")
    else:
        key = resource.key if resource.key is not None else read_key_file(resource)
        lines.append("Signed-By:\n" + _multiline(key))
    return "\n".join(lines) + "\n"
