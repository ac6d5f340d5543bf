"""Text fields as unified diffs (reconciler/textdiff.py), against golden text.

Covers an edit with context, a create, the missing final newline, the size caps
(lines shown, large files, binary content), and the secret rules: a secret in the
spec's text shows as ``(sensitive)``, a host line that could hold one (the file
holds secrets, or is not world-readable) is never shown, and a change of a secret
value alone says so without showing either value. Goldens live in
``tests/core/fixtures/textdiff/``; regenerate with ``RECONCILER_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from reconciler.plan import DiffKind, TextDiff
from reconciler.textdiff import (
    MAX_LINES,
    READ_CAP,
    DesiredText,
    HostText,
    human_size,
    parse_read_output,
    resolve,
    text_diff,
)

GOLDEN = Path(__file__).parent / "fixtures" / "textdiff"
OLD_SECRET = "old-secret-value-5e1f0a9c"
NEW_SECRET = "new-secret-value-77ab31d2"


def golden(name: str, diff: TextDiff) -> None:
    text = "\n".join([f"kind: {diff.kind.value}", f"summary: {diff.summary}", f"omitted: {diff.omitted}",
                      *diff.lines]) + "\n"
    path = GOLDEN / name
    if os.environ.get("RECONCILER_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def host(text: str | bytes, *, world_readable: bool = True, size: int | None = None) -> HostText:
    data = text.encode() if isinstance(text, str) else text
    return HostText(data, len(data) if size is None else size, world_readable)


def plain(text: str) -> DesiredText:
    resolved = resolve(text, lambda name: None)
    assert resolved is not None
    return resolved


def with_secret(template: str, value: str = NEW_SECRET) -> DesiredText:
    resolved = resolve(template, {"db_password": value}.get)
    assert resolved is not None
    return resolved


NGINX_OLD = "".join(f"line {n}\n" for n in range(1, 13))
NGINX_NEW = NGINX_OLD.replace("line 3\n", "line three\n").replace("line 11\n", "") + "line 13\n"


def test_edit_shows_hunks_with_three_lines_of_context() -> None:
    diff = text_diff(host(NGINX_OLD), plain(NGINX_NEW))
    golden("edit.txt", diff)
    assert diff.kind is DiffKind.TEXT
    assert "-line 3" in diff.lines and "+line three" in diff.lines and "-line 11" in diff.lines


def test_create_shows_every_line_added() -> None:
    diff = text_diff(None, plain("[Unit]\nDescription=api\n"))
    assert diff.lines == ("@@ -0,0 +1,2 @@", "+[Unit]", "+Description=api")


def test_missing_final_newline_is_marked() -> None:
    diff = text_diff(host("a\nb"), plain("a\nb\n"))
    golden("no-newline.txt", diff)
    assert "\\ No newline at end of file" in diff.lines


def test_secret_in_the_spec_shows_as_sensitive_and_host_lines_stay_hidden() -> None:
    old = f"DB_HOST=db1\nDB_PASSWORD={OLD_SECRET}\nLOG=info\n"
    new = with_secret("DB_HOST=db2\nDB_PASSWORD=${secret:db_password}\nLOG=info\n")
    diff = text_diff(host(old), new)
    golden("secret.txt", diff)
    shown = "\n".join(diff.lines)
    assert OLD_SECRET not in shown and NEW_SECRET not in shown
    # The same line with another value of the secret reads as that line, redacted.
    assert " DB_PASSWORD=(sensitive)" in diff.lines
    assert diff.summary == "secret values differ too (not shown)"
    # A host line that is not in the new text may hold a secret: a marker, never the line.
    assert "DB_HOST=db1" not in shown
    assert "-(1 line of the host's file not shown: the file holds secrets)" in diff.lines
    assert "+DB_HOST=db2" in diff.lines


def test_an_unchanged_secret_line_shows_redacted_as_context() -> None:
    old = f"A=1\nDB_PASSWORD={NEW_SECRET}\n"
    diff = text_diff(host(old), with_secret("A=2\nDB_PASSWORD=${secret:db_password}\n"))
    assert " DB_PASSWORD=(sensitive)" in diff.lines
    assert NEW_SECRET not in "\n".join(diff.lines)


def test_only_a_secret_value_changed() -> None:
    diff = text_diff(host(f"PW={OLD_SECRET}\n"), with_secret("PW=${secret:db_password}\n"))
    assert diff.lines == ()
    assert diff.summary == "only secret values differ, and they are not shown"


def test_a_file_that_is_not_world_readable_shows_no_host_lines() -> None:
    diff = text_diff(host("token=abc\nport=1\n", world_readable=False), plain("port=2\n"))
    assert "token=abc" not in "\n".join(diff.lines)
    assert diff.lines[1] == "-(2 lines of the host's file not shown: it is not world-readable on the host)"


def test_binary_content_is_summarised() -> None:
    diff = text_diff(host(b"\x89PNG\r\n\x1a\n\0" * 1400), plain("text\n"))
    assert (diff.kind, diff.lines) == (DiffKind.BINARY, ())
    assert diff.summary == "binary, 12 KiB -> 5 B"


def test_large_files_are_summarised_with_sizes_and_digests() -> None:
    diff = text_diff(host("x" * 10, size=3 * 1024 * 1024), plain("y\n"), old_digest="sha256:" + "a" * 64,
                     new_digest="sha256:" + "b" * 64)
    assert diff.kind is DiffKind.LARGE
    assert diff.summary == "large file: 3.0 MiB -> 2 B, sha256 aaaaaaaaaaaa -> bbbbbbbbbbbb"
    big = plain("z" * (READ_CAP + 1))
    assert text_diff(None, big).kind is DiffKind.LARGE


def test_long_diffs_are_capped() -> None:
    diff = text_diff(host(""), plain("".join(f"{n}\n" for n in range(MAX_LINES + 50))))
    assert len(diff.lines) == MAX_LINES
    assert diff.omitted == 51  # 250 added lines and the hunk header, 200 shown


def test_escaped_references_and_vars_are_shown_as_written() -> None:
    assert plain("literal $${not_a_var}\n").shown == "literal ${not_a_var}\n"


def test_read_output_parsing() -> None:
    out = f"5 644\n{base64.b64encode(b'hello').decode()}\n-\n\n3 600\n{base64.b64encode(b'abc').decode()}\n"
    texts = parse_read_output(out, ["/a", "/link", "/private"])
    assert texts["/a"] == HostText(b"hello", 5, True)
    assert texts["/link"] is None
    assert texts["/private"] == HostText(b"abc", 3, False)


def test_human_sizes() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 12 * 1024 + 300, 3 * 1024 * 1024)] == [
        "0 B", "1023 B", "1.0 KiB", "12 KiB", "3.0 MiB"]
