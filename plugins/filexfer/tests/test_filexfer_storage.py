"""Spool and index on their own: real files in a temp dir, no server."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from chatcore_filexfer.index import READY, UPLOADING, Entry, Index, Usage
from chatcore_filexfer.spool import Spool, SpoolError


def make_entry(upload_id: str, sender: str = "Ann", recipient: str = "Bob", size: int = 10,
               state: str = UPLOADING, created: float = 100.0) -> Entry:
    return Entry(upload_id=upload_id, file_id=None, spool_name=upload_id, sender=sender,
                 sender_key=sender.casefold(), recipient=recipient, recipient_key=recipient.casefold(),
                 filename="f.txt", size=size, sha256="0" * 64, state=state, created=created,
                 touched=created, completed=None)


def test_spool_refuses_names_it_did_not_make(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for bad in ["../x", "/etc/passwd", "a" * 32 + "/..", "", "A" * 32, "0" * 31]:
        with pytest.raises(ValueError):
            spool.path(bad)
    name = spool.new_name()
    assert spool.path(name).parent == spool.root


def test_spool_appends_only_at_the_end(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    name = spool.new_name()
    spool.create(name)
    assert spool.append(name, 0, b"hello ") == 6
    assert spool.append(name, 6, b"world") == 11
    with pytest.raises(SpoolError):
        spool.append(name, 3, b"xx")
    assert spool.size(name) == 11
    assert spool.hash_prefix(name, 5).hexdigest() == hashlib.sha256(b"hello").hexdigest()


def test_a_full_disk_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path)
    name = spool.new_name()
    spool.create(name)
    spool.append(name, 0, b"abc")
    calls = []

    def half_then_full(fd: int, data: memoryview) -> int:
        if not calls:
            calls.append(1)
            return os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "_write", half_then_full)
    with pytest.raises(SpoolError) as caught:
        spool.append(name, 3, b"0123456789")
    assert caught.value.full
    assert spool.path(name).read_bytes() == b"abc"


def test_index_tracks_usage_resume_and_expiry(make_index) -> None:
    index = make_index()
    index.insert(make_entry("a" * 32, size=10, created=100.0))
    index.insert(make_entry("b" * 32, size=5, sender="ann", created=200.0))
    index.insert(make_entry("c" * 32, sender="Cy", size=7, created=300.0))
    assert index.usage("ann") == Usage(bytes=15, files=2, offers=2, offer_bytes=15, total=22)
    assert index.find_partial("ann", "bob", "0" * 64, 5).upload_id == "b" * 32
    assert index.find_partial("ann", "bob", "0" * 64, 6) is None
    assert index.complete("a" * 32, "f" * 32, 150.0)
    assert not index.complete("a" * 32, "e" * 32, 160.0)  # already complete
    ready = index.by_file("f" * 32)
    assert ready is not None and ready.state == READY and ready.completed == 150.0
    assert [e.upload_id for e in index.waiting_for("bob")] == ["a" * 32]
    expired = {e.upload_id for e in index.expired(ready_before=151.0, partial_before=250.0, delivered_before=0.0)}
    assert expired == {"a" * 32, "b" * 32}
    assert index.delete("a" * 32) and not index.delete("a" * 32)
    index.close()
    reopened = make_index()
    assert reopened.usage("ANN".casefold()) == Usage(bytes=5, files=1, offers=1, offer_bytes=5, total=12)
    reopened.close()


# The table as the plugin wrote it before idle uploads stopped reserving their declared size.
OLD_SCHEMA = """
CREATE TABLE files (
    upload_id TEXT PRIMARY KEY, file_id TEXT UNIQUE, spool_name TEXT NOT NULL UNIQUE, sender TEXT NOT NULL,
    sender_key TEXT NOT NULL, recipient TEXT NOT NULL, recipient_key TEXT NOT NULL, filename TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0), sha256 TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('uploading', 'ready')), created REAL NOT NULL, touched REAL NOT NULL,
    completed REAL, delivered REAL
);
INSERT INTO files VALUES ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', NULL, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'ann', 'ann',
                          'bob', 'bob', 'f.txt', 50, '0000000000000000000000000000000000000000000000000000000000000000',
                          'uploading', 100.0, 100.0, NULL, NULL);
"""


def test_an_idle_upload_counts_what_it_holds_and_an_old_index_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    old = sqlite3.connect(tmp_path / "index.sqlite3")
    old.executescript(OLD_SCHEMA)
    old.close()
    index = Index(tmp_path / "index.sqlite3")
    index.insert(make_entry("b" * 32, sender="ann", size=30, created=200.0))
    assert index.usage("ann") == Usage(bytes=80, files=2, offers=2, offer_bytes=80, total=80)
    assert [e.upload_id for e in index.going_idle(before=150.0)] == ["a" * 32]

    index.set_held("a" * 32, 7)  # idle: it holds 7 bytes and no longer reserves the other 43
    assert index.by_upload("a" * 32).held == 7
    assert index.usage("ann") == Usage(bytes=37, files=2, offers=1, offer_bytes=30, total=37)
    assert index.going_idle(before=150.0) == []
    index.set_held("a" * 32, None)  # a chunk came: active again
    assert index.usage("ann").bytes == 80
    index.set_held("b" * 32, 30)
    assert index.complete("b" * 32, "f" * 32, 300.0)
    assert index.by_file("f" * 32).held is None  # a complete file counts at its size
    assert index.usage("ann") == Usage(bytes=80, files=2, offers=1, offer_bytes=50, total=80)
    index.close()
