"""Spool and index on their own: real files in a temp dir, no server."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from chatcore_filexfer.index import READY, UPLOADING, Entry, Index
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


def test_index_tracks_usage_resume_and_expiry(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    index.insert(make_entry("a" * 32, size=10, created=100.0))
    index.insert(make_entry("b" * 32, size=5, sender="ann", created=200.0))
    index.insert(make_entry("c" * 32, sender="Cy", size=7, created=300.0))
    assert index.usage("ann") == (15, 2, 22)
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
    reopened = Index(tmp_path / "index.sqlite3")
    assert reopened.usage("ANN".casefold()) == (5, 1, 12)
    reopened.close()
