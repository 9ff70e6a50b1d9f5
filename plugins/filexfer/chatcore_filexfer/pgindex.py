"""The index in PostgreSQL (cluster mode): the same rows and methods as ``index.Index``, shared
by every node in the cluster's ``filexfer`` schema.

Each method is one short transaction on a pooled connection, except inside ``exclusive()``:
there the calls share one transaction holding a cluster-wide advisory lock, so a quota check
and the insert it allows are one step on every node at once (the quotas count every node's rows).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, Iterator, Optional

from psycopg.rows import dict_row

from chatcore_filexfer.index import Entry, Usage

if TYPE_CHECKING:
    import psycopg

    from chatcore.cluster.database import Schema

RESERVE_LOCK = 0x66786672  # "fxfr": held while a quota check and its change happen together

# Numbered migration steps of the ``filexfer`` schema (``Schema.migrate``); never edit one, add one.
MIGRATIONS = [
    """
    CREATE TABLE files (
        seq           bigserial UNIQUE,
        upload_id     text PRIMARY KEY,
        file_id       text UNIQUE,
        spool_name    text NOT NULL UNIQUE,
        sender        text NOT NULL,
        sender_key    text NOT NULL,
        recipient     text NOT NULL,
        recipient_key text NOT NULL,
        filename      text NOT NULL,
        size          bigint NOT NULL CHECK (size >= 0),
        sha256        text NOT NULL,
        state         text NOT NULL CHECK (state IN ('uploading', 'ready')),
        created       double precision NOT NULL,
        touched       double precision NOT NULL,
        completed     double precision,
        delivered     double precision,
        held          bigint
    );
    CREATE INDEX files_by_recipient ON files (recipient_key, state, completed);
    CREATE INDEX files_by_sender ON files (sender_key, recipient_key, sha256, size, state);
    CREATE TABLE blobs (
        name    text PRIMARY KEY,
        oid     oid NOT NULL UNIQUE,
        length  bigint NOT NULL DEFAULT 0 CHECK (length >= 0),
        created timestamptz NOT NULL DEFAULT now()
    );
    """,
]

_COLUMNS = ", ".join(Entry.__dataclass_fields__)
_SELECT = f"SELECT {_COLUMNS} FROM files"


class PgIndex:
    """Rows of ``Entry`` in the ``files`` table of the plugin's schema; thread-safe."""

    def __init__(self, schema: "Schema") -> None:
        self._schema = schema
        self._local = threading.local()  # the connection of an exclusive() block on this thread

    def close(self) -> None:
        """Nothing to close: the connections belong to the node's pool."""

    @contextlib.contextmanager
    def _conn(self) -> Iterator["psycopg.Connection[Any]"]:
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        with self._schema.connection() as conn:
            yield conn

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """One transaction under the cluster-wide reservation lock for the calls in the block."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self._schema.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (RESERVE_LOCK,))
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Entry]:
        with self._conn() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)
            return [_entry(row) for row in cur.fetchall()]

    def _one(self, sql: str, params: tuple[Any, ...]) -> Optional[Entry]:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _change(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._conn() as conn:
            return conn.execute(sql, params).rowcount

    def insert(self, entry: Entry) -> None:
        """Add a new upload row."""
        values = tuple(getattr(entry, name) for name in Entry.__dataclass_fields__)
        self._change(f"INSERT INTO files ({_COLUMNS}) VALUES ({', '.join(['%s'] * len(values))})", values)

    def by_upload(self, upload_id: str) -> Optional[Entry]:
        return self._one(f"{_SELECT} WHERE upload_id = %s", (upload_id,))

    def by_file(self, file_id: str) -> Optional[Entry]:
        return self._one(f"{_SELECT} WHERE file_id = %s", (file_id,))

    def find_partial(self, sender_key: str, recipient_key: str, sha256: str, size: int) -> Optional[Entry]:
        """The unfinished upload of the same content between the same two users (for resume)."""
        return self._one(f"{_SELECT} WHERE sender_key = %s AND recipient_key = %s AND sha256 = %s"
                         " AND size = %s AND state = 'uploading' ORDER BY created, seq LIMIT 1",
                         (sender_key, recipient_key, sha256, size))

    def usage(self, sender_key: str) -> Usage:
        """What ``sender_key`` and everyone hold, counted the way the quotas count it (every node's rows)."""
        active = "state = 'uploading' AND held IS NULL"
        with self._conn() as conn:
            mine = conn.execute(
                f"SELECT COALESCE(SUM(COALESCE(held, size)), 0), COUNT(*), COUNT(*) FILTER (WHERE {active}),"
                f" COALESCE(SUM(size) FILTER (WHERE {active}), 0) FROM files WHERE sender_key = %s",
                (sender_key,)).fetchone()
            total = conn.execute("SELECT COALESCE(SUM(COALESCE(held, size)), 0) FROM files").fetchone()
        assert mine is not None and total is not None
        return Usage(int(mine[0]), int(mine[1]), int(mine[2]), int(mine[3]), int(total[0]))

    def touch(self, upload_id: str, when: float) -> None:
        """Record a chunk's arrival (idle and abandoned uploads are judged by this time)."""
        self._change("UPDATE files SET touched = GREATEST(touched, %s) WHERE upload_id = %s", (when, upload_id))

    def set_held(self, upload_id: str, held: Optional[int]) -> None:
        """Mark an upload idle, counting only the ``held`` bytes, or active again (None)."""
        self._change("UPDATE files SET held = %s WHERE upload_id = %s AND state = 'uploading'", (held, upload_id))

    def complete(self, upload_id: str, file_id: str, when: float) -> bool:
        """Mark an upload as a ready file; False if it was not (or no longer) uploading (on any node)."""
        return self._change("UPDATE files SET state = 'ready', file_id = %s, completed = %s, touched = %s,"
                            " held = NULL WHERE upload_id = %s AND state = 'uploading'",
                            (file_id, when, when, upload_id)) == 1

    def mark_delivered(self, upload_id: str, when: float) -> bool:
        """Record that a download sent the whole file; True only the first time, cluster-wide."""
        return self._change("UPDATE files SET delivered = %s WHERE upload_id = %s AND state = 'ready'"
                            " AND delivered IS NULL", (when, upload_id)) == 1

    def delete(self, upload_id: str) -> bool:
        """Remove a row; True if this call removed it (so exactly one node cleans up and tells)."""
        return self._change("DELETE FROM files WHERE upload_id = %s", (upload_id,)) == 1

    def waiting_for(self, recipient_key: str) -> list[Entry]:
        """Complete files offered to ``recipient_key`` and not yet downloaded, oldest first."""
        return self._rows(f"{_SELECT} WHERE recipient_key = %s AND state = 'ready' AND delivered IS NULL"
                          " ORDER BY completed, seq", (recipient_key,))

    def expired(self, ready_before: float, partial_before: float, delivered_before: float) -> list[Entry]:
        """Files completed before ``ready_before`` or downloaded before ``delivered_before``, and
        uploads idle since before ``partial_before``."""
        return self._rows(f"{_SELECT} WHERE (state = 'ready' AND completed < %s)"
                          " OR (state = 'ready' AND delivered < %s) OR (state = 'uploading' AND touched < %s)",
                          (ready_before, delivered_before, partial_before))

    def going_idle(self, before: float) -> list[Entry]:
        """Active uploads whose last recorded chunk (or offer) is older than ``before``."""
        return self._rows(f"{_SELECT} WHERE state = 'uploading' AND held IS NULL AND touched < %s", (before,))

    def unfinished(self, upload_ids: list[str]) -> set[str]:
        """Which of ``upload_ids`` are still unfinished uploads (on any node)."""
        with self._conn() as conn:
            rows = conn.execute("SELECT upload_id FROM files WHERE state = 'uploading' AND upload_id = ANY(%s)",
                                (upload_ids,)).fetchall()
        return {str(row[0]) for row in rows}

    def involving(self, user_key: str) -> list[Entry]:
        """Every upload and file ``user_key`` sent or is to receive (account removal)."""
        return self._rows(f"{_SELECT} WHERE sender_key = %s OR recipient_key = %s", (user_key, user_key))

    def without_blob(self) -> list[Entry]:
        """Rows whose stored bytes are gone (startup reconciliation; only a failure leaves one)."""
        return self._rows(f"{_SELECT} f WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.name = f.spool_name)")

    def all(self) -> Iterator[Entry]:
        """Every row, in the order they were made (startup reconciliation)."""
        return iter(self._rows(f"{_SELECT} ORDER BY seq"))

    def is_empty(self) -> bool:
        """Whether the schema holds no row and no stored bytes (``chatcore import-sqlite`` checks)."""
        with self._conn() as conn:
            row = conn.execute("SELECT (SELECT COUNT(*) FROM files) + (SELECT COUNT(*) FROM blobs)").fetchone()
        return row is not None and int(row[0]) == 0


def _entry(row: dict[str, Any]) -> Entry:
    """An ``Entry`` from a row (bigint columns come back as int, double precision as float)."""
    return Entry(**row)
