"""``chatcore import-sqlite`` for files: a single node's index and spool into the cluster's
``filexfer`` schema and large objects, keeping ids, names, states and times.

Everything goes in one transaction, so a failed import leaves the schema empty to try again.
A row whose spool file is missing (a crash the node never reconciled) is skipped; spool files
no row names are left behind. A schema already holding rows or bytes is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from chatcore_filexfer.index import Entry, Index
from chatcore_filexfer.spool import READ_CHUNK, Spool

if TYPE_CHECKING:
    from chatcore.cluster.database import Database

log = logging.getLogger(__name__)

NAME = "filexfer"
INDEX_FILE = "index.sqlite3"
SPOOL_DIR = "spool"


class ImportRefused(RuntimeError):
    """The cluster already holds files: importing would merge two histories."""


def import_sqlite(data_dir: Path, database: "Database") -> tuple[int, int]:
    """Copy ``<data_dir>/filexfer/`` into the cluster; returns (rows imported, rows skipped)."""
    root = data_dir / NAME
    if not (root / INDEX_FILE).is_file():
        return 0, 0
    schema = database.schema(NAME)
    from chatcore_filexfer.pgindex import PgIndex  # psycopg: only when importing into a cluster

    if not PgIndex(schema).is_empty():
        raise ImportRefused("the cluster's filexfer schema already holds files; import-sqlite only "
                            "fills an empty one (it would merge two nodes' files otherwise)")
    index, spool = Index(root / INDEX_FILE), Spool(root / SPOOL_DIR)  # opening adds columns an old index lacks
    try:
        entries = list(index.all())
    finally:
        index.close()
    imported = skipped = 0
    columns = ", ".join(Entry.__dataclass_fields__)
    with schema.connection() as conn:
        for entry in entries:
            length = spool.size(entry.spool_name)
            if length is None or length > entry.size:
                log.warning("filexfer: not importing %s: its spool file is missing or too long", entry.upload_id)
                skipped += 1
                continue
            row = conn.execute("INSERT INTO blobs (name, oid, length) VALUES (%s, lo_create(0), %s) RETURNING oid",
                               (entry.spool_name, length)).fetchone()
            assert row is not None
            with spool.open(entry.spool_name) as source:
                offset = 0
                while offset < length:
                    piece = source.read(min(READ_CHUNK, length - offset))
                    if not piece:
                        raise OSError(f"spool file {entry.spool_name} ended at {offset} of {length} bytes")
                    conn.execute("SELECT lo_put(%s::oid, %s, %s)", (row[0], offset, piece))
                    offset += len(piece)
            values = tuple(getattr(entry, name) for name in Entry.__dataclass_fields__)
            conn.execute(f"INSERT INTO files ({columns}) VALUES ({', '.join(['%s'] * len(values))})", values)
            imported += 1
    log.info("filexfer: imported %d file(s) into the cluster, skipped %d", imported, skipped)
    return imported, skipped
