"""File bodies in PostgreSQL large objects (cluster mode): the ``spool.Spool`` interface, shared
by every node, so an upload begun on one node resumes on another at the offset stored here.

The ``blobs`` table maps a server-generated name (the index row's ``spool_name``) to its large
object and the bytes it holds. A chunk is written with ``lo_put`` at the client's offset in one
transaction that locks the blob's row, checks that the offset is the stored length and that the
upload is still unfinished, and updates the length: a failed write leaves nothing behind, and
two nodes writing the same upload take turns. Reads use ``lo_get`` in bounded pieces; nothing
here holds a whole file in memory.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import TYPE_CHECKING, Any, Iterator, Optional

import psycopg

from chatcore.cluster import DatabaseUnavailable
from chatcore_filexfer.spool import READ_CHUNK, SpoolError

if TYPE_CHECKING:
    from chatcore.cluster.database import Schema

_NAME = re.compile(r"[0-9a-f]{32}")
STRAY_GRACE = 600.0  # seconds a blob without an index row is left alone (an offer between its two steps)


def _check(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"not a spool name: {name!r}")
    return name


class LargeObjectSpool:
    """File bodies as large objects in the plugin's schema, named like spool files."""

    shared = True  # the stored length, not a node's memory, says how far an upload has come

    def __init__(self, schema: "Schema", stray_grace: float = STRAY_GRACE) -> None:
        self._schema = schema
        self.stray_grace = stray_grace

    new_name = staticmethod(lambda: uuid.uuid4().hex)

    def create(self, name: str) -> None:
        """A new, empty large object for a new upload (fails if the name somehow exists)."""
        with self._schema.connection() as conn:
            conn.execute("INSERT INTO blobs (name, oid) VALUES (%s, lo_create(0))", (_check(name),))

    def size(self, name: str) -> Optional[int]:
        """Bytes stored for ``name``, or None if there is no such blob."""
        with self._schema.connection() as conn:
            row = conn.execute("SELECT length FROM blobs WHERE name = %s", (_check(name),)).fetchone()
        return int(row[0]) if row is not None else None

    def append(self, name: str, offset: int, data: bytes, touched: Optional[float] = None) -> int:
        """Write ``data`` at ``offset``, which must be the stored length of a blob whose upload is
        unfinished and active, and record ``touched`` as the upload's last chunk; returns the new
        length. Raises SpoolError (``held``: the stored length when it is not ``offset``; ``gone``:
        no unfinished upload owns the blob; ``idle``: a sweep made it idle); nothing is written then."""
        try:
            with self._schema.connection() as conn:
                # A chunk lost with a PostgreSQL crash loses its length with it (one transaction),
                # and the client resends from the stored offset: no need to wait for the WAL flush.
                conn.execute("SET LOCAL synchronous_commit TO off")
                row = conn.execute(
                    "SELECT b.oid, b.length, f.state, f.held FROM blobs b LEFT JOIN files f"
                    " ON f.spool_name = b.name WHERE b.name = %s FOR UPDATE OF b", (_check(name),)).fetchone()
                if row is None or row[2] != "uploading":
                    raise SpoolError("the upload is finished or gone", gone=True)
                oid, length = row[0], int(row[1])
                if length != offset:
                    raise SpoolError(f"the server holds {length} bytes, not {offset}", held=length)
                if row[3] is not None:
                    raise SpoolError("the upload went idle", idle=True)
                if data:
                    conn.execute("SELECT lo_put(%s::oid, %s, %s)", (oid, offset, data))
                    conn.execute("UPDATE blobs SET length = %s WHERE name = %s", (offset + len(data), name))
                if touched is not None:
                    conn.execute("UPDATE files SET touched = GREATEST(touched, %s) WHERE spool_name = %s",
                                 (touched, name))
                return offset + len(data)
        except psycopg.errors.DiskFull:
            raise SpoolError("the database's disk is full", full=True) from None
        except DatabaseUnavailable as exc:  # whether the chunk was committed is unknown: re-read it next time
            raise SpoolError(f"the database is unreachable ({exc})") from None
        except psycopg.Error as exc:
            raise SpoolError(f"write failed: {exc}") from None

    def open(self, name: str) -> "LargeObjectReader":
        """A reader of the stored bytes; FileNotFoundError if there is no such blob."""
        with self._schema.connection() as conn:
            row = conn.execute("SELECT oid, length FROM blobs WHERE name = %s", (_check(name),)).fetchone()
        if row is None:
            raise FileNotFoundError(name)
        return LargeObjectReader(self._schema, row[0], int(row[1]))

    def hash_prefix(self, name: str, length: int) -> "hashlib._Hash":
        """A SHA-256 object fed the first ``length`` stored bytes of ``name``, read back in 1 MiB pieces."""
        digest = hashlib.sha256()
        with self.open(name) as reader:
            left = length
            while left > 0:
                piece = reader.read(min(READ_CHUNK, left))
                if not piece:
                    break
                digest.update(piece)
                left -= len(piece)
        return digest

    def remove(self, name: str) -> None:
        """Unlink the large object and forget its name; a blob already gone is fine."""
        with self._schema.connection() as conn:
            row = conn.execute("DELETE FROM blobs WHERE name = %s RETURNING oid", (_check(name),)).fetchone()
            if row is not None:
                conn.execute("SELECT lo_unlink(%s::oid)", (row[0],))

    def names(self) -> Iterator[str]:
        """The blobs older than ``stray_grace`` (a younger one may be an offer whose row comes next)."""
        with self._schema.connection() as conn:
            rows = conn.execute("SELECT name FROM blobs WHERE created < now() - make_interval(secs => %s)",
                                (self.stray_grace,)).fetchall()
        return iter([str(row[0]) for row in rows])

    def remove_strays(self) -> int:
        """Unlink blobs no index row names, older than ``stray_grace`` (left by a node that died
        between an upload's two steps, or between deleting a row and its blob); how many."""
        with self._schema.connection() as conn:
            rows = conn.execute(
                "WITH gone AS (DELETE FROM blobs b WHERE b.created < now() - make_interval(secs => %s)"
                " AND NOT EXISTS (SELECT 1 FROM files f WHERE f.spool_name = b.name) RETURNING b.oid)"
                " SELECT lo_unlink(oid) FROM gone", (self.stray_grace,)).fetchall()
        return len(rows)

    def used_bytes(self) -> int:
        """Bytes every blob holds together (diagnostics and tests)."""
        with self._schema.connection() as conn:
            row = conn.execute("SELECT COALESCE(SUM(length), 0) FROM blobs").fetchone()
        return int(row[0]) if row is not None else 0


class LargeObjectReader:
    """Reads one large object from a position (a file-like subset), fetching at least ``PREFETCH``
    bytes per query, so a download's 32 KiB reads cost one query per 256 KiB."""

    PREFETCH = 256 << 10

    def __init__(self, schema: "Schema", oid: int, length: int) -> None:
        self._schema, self._oid, self.length = schema, oid, length
        self.position = 0
        self._buffer, self._buffer_at = b"", 0  # bytes fetched ahead, and where they start

    def __enter__(self) -> "LargeObjectReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._buffer = b""

    def seek(self, position: int) -> int:
        self.position = max(0, position)
        return self.position

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the position (at most 1 MiB; ``-1``: up to 1 MiB); b"" at the end.
        FileNotFoundError if the large object was unlinked meanwhile (declined, cancelled, expired)."""
        size = READ_CHUNK if size < 0 else min(size, READ_CHUNK)
        if size == 0 or self.position >= self.length:
            return b""
        start = self.position - self._buffer_at
        if not 0 <= start < len(self._buffer) or start + size > len(self._buffer) and \
                self._buffer_at + len(self._buffer) < self.length:
            self._buffer, self._buffer_at, start = self._fetch(max(size, self.PREFETCH)), self.position, 0
        data = self._buffer[start:start + size]
        self.position += len(data)
        return data

    def _fetch(self, size: int) -> bytes:
        try:
            with self._schema.connection() as conn:
                row = conn.execute("SELECT lo_get(%s::oid, %s, %s)", (self._oid, self.position, size)).fetchone()
        except psycopg.errors.UndefinedObject:
            raise FileNotFoundError(f"large object {self._oid} is gone") from None
        return bytes(row[0]) if row is not None and row[0] is not None else b""
