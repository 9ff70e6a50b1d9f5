"""Display-name cleaning: nothing a client sends survives as a path or a device name."""

from __future__ import annotations

import pytest

from chatcore_filexfer.names import MAX_NAME_BYTES, sanitize_filename


@pytest.mark.parametrize("raw, expected", [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("/etc/shadow", "shadow"),
    ("C:\\Windows\\system32\\drivers\\etc\\hosts", "hosts"),
    ("C:evil.txt", "C_evil.txt"),
    ("a\x00b.txt", "ab.txt"),
    ("line\nbreak\r.txt", "linebreak.txt"),
    ("CON", "_CON"),
    ("nul.txt", "_nul.txt"),
    ("com1", "_com1"),
    ("LPT9.log", "_LPT9.log"),
    ("", "file"),
    (".", "file"),
    ("..", "file"),
    ("../", "file"),
    ("   ", "file"),
    (".bashrc", "bashrc"),
    ("name. ", "name"),
    ("what?.txt", "what_.txt"),
    ("evil\u202etxt.exe", "eviltxt.exe"),
    ("caf\u0065\u0301.txt", "caf\u00e9.txt"),
])
def test_hostile_names_become_plain_labels(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_a_very_long_name_is_cut_to_255_bytes_keeping_the_extension() -> None:
    cleaned = sanitize_filename("é" * 1000 + ".tar.gz")
    assert len(cleaned.encode("utf-8")) <= MAX_NAME_BYTES
    assert cleaned.endswith(".gz") and cleaned.startswith("é")


def test_a_cleaned_name_is_never_a_path() -> None:
    for raw in ["../../x", "/abs", "a/b/../..", "\\\\server\\share\\f", "x/\x00/..", "..\\..\\boot.ini"]:
        cleaned = sanitize_filename(raw)
        assert "/" not in cleaned and "\\" not in cleaned and "\x00" not in cleaned
        assert cleaned not in ("", ".", "..")
