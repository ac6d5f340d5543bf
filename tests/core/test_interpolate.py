"""``${var}`` and ``${secret:NAME}`` interpolation (reconciler/interpolate.py).

Variables are substituted per host before a provider sees a resource; secret
references stay until a provider reveals them, which gives a ``Sensitive`` value
(or ``(known after apply)`` while the secret does not exist yet); ``$${`` is a
literal ``${``. Every revealed secret is registered with the process-wide redactor.
"""

from __future__ import annotations

import secrets as pysecrets

from reconciler.interpolate import Reference, references, reveal, substitute_vars, walk_strings
from reconciler.sensitive import KNOWN_AFTER_APPLY, REDACTED, REDACTOR, Sensitive


def unique_secret() -> Sensitive:
    # The redactor is process-wide: a unique value keeps tests from scrubbing each other.
    return Sensitive("s-" + pysecrets.token_hex(12))


def test_references_are_found_and_escapes_skipped() -> None:
    assert references("listen ${port}; $${literal} ${ secret: db_pw } ${secret:api.key}") == [
        Reference("var", "port"), Reference("secret", "db_pw"), Reference("secret", "api.key")]
    assert references("no references, just $HOME and {braces}") == []


def test_walk_strings_yields_paths_of_every_string() -> None:
    data = {"a": "x", "b": [1, "y", {"c": "z"}], "d": None}
    assert walk_strings(data) == [(("a",), "x"), (("b", 1), "y"), (("b", 2, "c"), "z")]


def test_substitute_vars_replaces_vars_and_keeps_secrets_and_escapes() -> None:
    data = {"content": "server ${host}:${port}; pw=${secret:pw}; $${port}", "list": ["${port}", 5, True]}
    out = substitute_vars(data, {"host": "web", "port": "8080"})
    assert out == {"content": "server web:8080; pw=${secret:pw}; $${port}", "list": ["8080", 5, True]}


def test_unknown_var_is_left_in_place_for_validation_to_report() -> None:
    assert substitute_vars("${nope} and ${host}", {"host": "web"}) == "${nope} and web"


def test_reveal_without_secrets_unescapes_and_stays_plain() -> None:
    value = reveal("literal $${x} and ${leftover}", lambda name: None)
    assert value == "literal ${x} and ${leftover}"
    assert type(value) is str


def test_reveal_with_a_secret_gives_sensitive_and_registers_it() -> None:
    secret = unique_secret()
    value = reveal("password=${secret:db}\n", {"db": secret}.get)
    assert isinstance(value, Sensitive)
    assert value.reveal() == f"password={secret.reveal()}\n"
    assert str(value) == REDACTED and repr(value) == REDACTED and f"{value}" == REDACTED
    assert REDACTOR.scrub(f"log line with {secret.reveal()} in it") == f"log line with {REDACTED} in it"


def test_reveal_of_a_missing_secret_is_known_after_apply() -> None:
    secret = unique_secret()
    lookup = {"present": secret}.get
    assert reveal("${secret:present} ${secret:absent}", lookup) is KNOWN_AFTER_APPLY
    assert KNOWN_AFTER_APPLY != KNOWN_AFTER_APPLY  # a pending value never equals anything
