"""The SQLite index of the spool: who sent what to whom, its size, hash and state.

One connection guarded by a lock (the plugin's write rate is a few rows per file, not per
chunk), WAL journal with ``synchronous=NORMAL``: a committed row survives a process crash.
A row counts against quotas at its declared ``size``, except an idle upload, which counts at
the bytes it ``held`` when it went idle.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

UPLOADING = "uploading"
READY = "ready"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    upload_id     TEXT PRIMARY KEY,
    file_id       TEXT UNIQUE,
    spool_name    TEXT NOT NULL UNIQUE,
    sender        TEXT NOT NULL,
    sender_key    TEXT NOT NULL,
    recipient     TEXT NOT NULL,
    recipient_key TEXT NOT NULL,
    filename      TEXT NOT NULL,
    size          INTEGER NOT NULL CHECK (size >= 0),
    sha256        TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('uploading', 'ready')),
    created       REAL NOT NULL,
    touched       REAL NOT NULL,
    completed     REAL,
    delivered     REAL,
    held          INTEGER
);
CREATE INDEX IF NOT EXISTS files_by_recipient ON files (recipient_key, state, completed);
CREATE INDEX IF NOT EXISTS files_by_sender ON files (sender_key, recipient_key, sha256, size, state);
"""


@dataclass(frozen=True)
class Entry:
    """One row of the index: a partial upload or a complete file waiting for its recipient."""

    upload_id: str
    file_id: Optional[str]
    spool_name: str
    sender: str
    sender_key: str
    recipient: str
    recipient_key: str
    filename: str
    size: int
    sha256: str
    state: str
    created: float
    touched: float
    completed: Optional[float]
    delivered: Optional[float] = None
    held: Optional[int] = None  # an idle upload: the bytes it holds (None: it reserves its declared size)


@dataclass(frozen=True)
class Usage:
    """What one sender holds, and all senders together, as quotas count it."""

    bytes: int  # the sender's complete files and active uploads at their size, idle uploads at what they hold
    files: int  # the sender's rows, complete or not
    offers: int  # the sender's active (not idle) unfinished uploads
    offer_bytes: int  # their declared sizes together
    total: int  # ``bytes`` over every sender


_COLUMNS = ", ".join(Entry.__dataclass_fields__)


class Index:
    """Rows of ``Entry`` in ``<plugin dir>/index.sqlite3``; every method is thread-safe."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(files)")}
        if "held" not in columns:  # an index written before idle uploads stopped reserving their size
            self._db.execute("ALTER TABLE files ADD COLUMN held INTEGER")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def exclusive(self) -> "contextlib.AbstractContextManager[None]":
        """Nothing more to hold: one process owns this index, and the service's own lock already
        makes a quota check and its change one step (``pgindex`` takes a cluster-wide lock here)."""
        return contextlib.nullcontext()

    def _one(self, sql: str, params: tuple[Any, ...]) -> Optional[Entry]:
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return Entry(**dict(row)) if row is not None else None

    def _many(self, sql: str, params: tuple[Any, ...] = ()) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [Entry(**dict(row)) for row in rows]

    def insert(self, entry: Entry) -> None:
        """Add a new upload row."""
        values = tuple(getattr(entry, name) for name in Entry.__dataclass_fields__)
        with self._lock:
            self._db.execute(f"INSERT INTO files ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values)

    def by_upload(self, upload_id: str) -> Optional[Entry]:
        return self._one(f"SELECT {_COLUMNS} FROM files WHERE upload_id = ?", (upload_id,))

    def by_file(self, file_id: str) -> Optional[Entry]:
        return self._one(f"SELECT {_COLUMNS} FROM files WHERE file_id = ?", (file_id,))

    def find_partial(self, sender_key: str, recipient_key: str, sha256: str, size: int) -> Optional[Entry]:
        """The unfinished upload of the same content between the same two users (for resume)."""
        return self._one(
            f"SELECT {_COLUMNS} FROM files WHERE sender_key = ? AND recipient_key = ? AND sha256 = ?"
            " AND size = ? AND state = 'uploading' ORDER BY created LIMIT 1",
            (sender_key, recipient_key, sha256, size))

    def usage(self, sender_key: str) -> Usage:
        """What ``sender_key`` and everyone hold, counted the way the quotas count it."""
        active = "state = 'uploading' AND held IS NULL"
        with self._lock:
            mine = self._db.execute(
                f"SELECT COALESCE(SUM(COALESCE(held, size)), 0), COUNT(*), COALESCE(SUM({active}), 0),"
                f" COALESCE(SUM(CASE WHEN {active} THEN size ELSE 0 END), 0) FROM files WHERE sender_key = ?",
                (sender_key,)).fetchone()
            total = self._db.execute("SELECT COALESCE(SUM(COALESCE(held, size)), 0) FROM files").fetchone()
        return Usage(int(mine[0]), int(mine[1]), int(mine[2]), int(mine[3]), int(total[0]))

    def touch(self, upload_id: str, when: float) -> None:
        """Record a chunk's arrival (idle and abandoned uploads are judged by this time)."""
        with self._lock:
            self._db.execute("UPDATE files SET touched = ? WHERE upload_id = ?", (when, upload_id))

    def set_held(self, upload_id: str, held: Optional[int]) -> None:
        """Mark an upload idle, counting only the ``held`` bytes, or active again (None)."""
        with self._lock:
            self._db.execute("UPDATE files SET held = ? WHERE upload_id = ? AND state = 'uploading'",
                             (held, upload_id))

    def complete(self, upload_id: str, file_id: str, when: float) -> bool:
        """Mark an upload as a ready file; False if it was not (or no longer) uploading."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE files SET state = 'ready', file_id = ?, completed = ?, touched = ?, held = NULL"
                " WHERE upload_id = ? AND state = 'uploading'", (file_id, when, when, upload_id))
        return cursor.rowcount == 1

    def mark_delivered(self, upload_id: str, when: float) -> bool:
        """Record that a download sent the whole file; True only the first time."""
        with self._lock:
            cursor = self._db.execute("UPDATE files SET delivered = ? WHERE upload_id = ? AND state = 'ready'"
                                      " AND delivered IS NULL", (when, upload_id))
        return cursor.rowcount == 1

    def delete(self, upload_id: str) -> bool:
        """Remove a row; True if this call removed it (so exactly one caller cleans up)."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM files WHERE upload_id = ?", (upload_id,))
        return cursor.rowcount == 1

    def waiting_for(self, recipient_key: str) -> list[Entry]:
        """Complete files offered to ``recipient_key`` and not yet downloaded, oldest first."""
        return self._many(f"SELECT {_COLUMNS} FROM files WHERE recipient_key = ? AND state = 'ready'"
                          " AND delivered IS NULL ORDER BY completed, rowid", (recipient_key,))

    def expired(self, ready_before: float, partial_before: float, delivered_before: float) -> list[Entry]:
        """Files completed before ``ready_before`` or downloaded before ``delivered_before``, and
        uploads idle since before ``partial_before``."""
        return self._many(f"SELECT {_COLUMNS} FROM files WHERE (state = 'ready' AND completed < ?)"
                          " OR (state = 'ready' AND delivered < ?) OR (state = 'uploading' AND touched < ?)",
                          (ready_before, delivered_before, partial_before))

    def going_idle(self, before: float) -> list[Entry]:
        """Active uploads whose last recorded chunk (or offer) is older than ``before``."""
        return self._many(f"SELECT {_COLUMNS} FROM files WHERE state = 'uploading' AND held IS NULL"
                          " AND touched < ?", (before,))

    def unfinished(self, upload_ids: list[str]) -> set[str]:
        """Which of ``upload_ids`` are still unfinished uploads."""
        with self._lock:
            rows = self._db.execute(f"SELECT upload_id FROM files WHERE state = 'uploading' AND upload_id IN"
                                    f" ({', '.join('?' * len(upload_ids))})", tuple(upload_ids)).fetchall()
        return {row[0] for row in rows}

    def involving(self, user_key: str) -> list[Entry]:
        """Every upload and file ``user_key`` sent or is to receive (account removal)."""
        return self._many(f"SELECT {_COLUMNS} FROM files WHERE sender_key = ? OR recipient_key = ?",
                          (user_key, user_key))

    def all(self) -> Iterator[Entry]:
        """Every row, in the order they were made (startup reconciliation, ``chatcore import-sqlite``)."""
        return iter(self._many(f"SELECT {_COLUMNS} FROM files ORDER BY rowid"))
