"""Secret values as a type, so they are redacted by construction.

A ``Sensitive`` is a ``str`` (it can be written to a host) whose ``repr`` and
``str`` rendering say ``(sensitive)``. Plan rendering, JSON output and logging
check the type. As a second line of defence every revealed value is also
registered with the process-wide ``REDACTOR``, which scrubs it from any text
that reaches a log line or an error message.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import unquote

REDACTED = "(sensitive)"


class Sensitive(str):
    """A string that must never be shown. Use ``.reveal()`` to get the raw value."""

    __slots__ = ()

    def reveal(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return REDACTED

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return REDACTED


class KnownAfterApply:
    """The value depends on something that only exists once apply has run
    (for example a secret that is generated on the host)."""

    _instance: KnownAfterApply | None = None

    def __new__(cls) -> KnownAfterApply:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(known after apply)"

    def __eq__(self, other: object) -> bool:
        # Never equal to anything observed: a pending value is always a change.
        return False

    def __hash__(self) -> int:
        return 0


KNOWN_AFTER_APPLY = KnownAfterApply()


class Redactor:
    """Scrubs registered secret values out of free text."""

    # Short values would scrub innocent text ("1", "yes"); generated secrets are long.
    MIN_LENGTH = 6

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        raw = value.reveal() if isinstance(value, Sensitive) else value
        if len(raw) >= self.MIN_LENGTH:
            with self._lock:
                self._values.add(raw)

    def scrub(self, text: str) -> str:
        if not self._values:
            return text
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def scrub_any(self, value: Any) -> Any:
        if isinstance(value, Sensitive):
            return REDACTED
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self.scrub_any(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_any(v) for v in value]
        return value


REDACTOR = Redactor()

# scheme://userinfo@ in any text. For http(s), ftp and git a userinfo is a credential
# even without a password (GitHub's https://TOKEN@github.com/...); elsewhere (ssh://git@)
# only its password part is.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s@'\"<>]+)@")
_CREDENTIAL_SCHEMES = ("http://", "https://", "ftp://", "ftps://", "git://")


def _redact_userinfo(m: re.Match[str]) -> str:
    scheme, userinfo = m.group(1), m.group(2)
    if scheme.lower() in _CREDENTIAL_SCHEMES:
        return f"{scheme}{REDACTED}@"
    user, sep, _password = userinfo.partition(":")
    return f"{scheme}{user}:{REDACTED}@" if sep else m.group(0)


def redact_urls(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced: ``https://user:TOKEN@git.example/x``
    becomes ``https://(sensitive)@git.example/x`` (git echoes remote URLs in its errors)."""
    return _URL_USERINFO.sub(_redact_userinfo, text) if "@" in text else text


def register_url_credentials(url: str) -> None:
    """Register the credentials a URL carries with ``REDACTOR``, raw and percent-decoded,
    so they are scrubbed even where they appear without the URL around them."""
    m = _URL_USERINFO.search(url)
    if m is None:
        return
    userinfo = m.group(2)
    user, sep, password = userinfo.partition(":")
    values = [userinfo, password] if sep else ([user] if m.group(1).lower() in _CREDENTIAL_SCHEMES else [])
    for value in values:
        for form in {value, unquote(value)}:
            REDACTOR.register(form)


def scrub_text(text: str) -> str:
    """Registered secrets and URL credentials scrubbed from free text."""
    return REDACTOR.scrub(redact_urls(text))


def scrub_data(value: Any) -> Any:
    """``scrub_text`` applied to every string in a JSON-like tree (keys too)."""
    if isinstance(value, Sensitive):
        return REDACTED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrub_text(k) if isinstance(k, str) else k: scrub_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_data(v) for v in value]
    return value


def public(value: Any) -> Any:
    """A JSON-safe view of a value with every secret replaced by ``(sensitive)``."""
    if isinstance(value, Sensitive):
        return REDACTED
    if isinstance(value, KnownAfterApply):
        return "(known after apply)"
    if isinstance(value, str):
        return REDACTOR.scrub(value)
    if isinstance(value, dict):
        return {str(k): public(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public(v) for v in value]
    return value


def contains_sensitive(value: Any) -> bool:
    if isinstance(value, Sensitive):
        return True
    if isinstance(value, dict):
        return any(contains_sensitive(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_sensitive(v) for v in value)
    return False
