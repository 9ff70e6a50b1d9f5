"""``chatcore import-sqlite`` for rooms: a single node's ``<data>/rooms/rooms.sqlite3`` copied into
the cluster's ``rooms`` schema with its ids, seqs and timestamps as they were.

Rooms keep their ids and ``last_seq`` (a seq never goes back, even past messages retention
deleted), messages their row ids, seqs, stamps, edits and deletions (each with its folded words
for search), and memberships, roles, read markers, bans, invitations, mentions, private read
markers, reactions, pins and the change log (ids, and how far it was pruned) come along, so
clients' cursors (``seq``, ``room_changes_since``) stay valid. The schema's trigger counts
each sender's messages of the newest day as the rows go in, in id order. Refuses a schema that
already holds a room or a message (nothing is imported).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from chatcore_chat.pgstore import folded_words
from chatcore_rooms import pgschema, pgstore, schema

log = logging.getLogger(__name__)
CHUNK = 5000  # rows read from SQLite and written per round
# (table, SQLite columns, PostgreSQL columns) copied as they are, after rooms and messages
TABLES = (
    ("members", "room_id, user_key, user, role, joined_seq, joined_ts, read_seq",
     'room_id, user_key, "user", role, joined_seq, joined_ts, read_seq'),
    ("bans", "room_id, user_key, user, by, reason, ts", 'room_id, user_key, "user", "by", reason, ts'),
    ("invites", "room_id, user_key, by, ts", 'room_id, user_key, "by", ts'),
    ("mentions", "user_key, room_id, seq", "user_key, room_id, seq"),
    ("private_reads", "user_key, peer_key, peer, read_id", "user_key, peer_key, peer, read_id"),
    ("reactions", "message_id, emoji, user_key, user, ts", 'message_id, emoji, user_key, "user", ts'),
    ("pins", "room_id, seq, by, ts", 'room_id, seq, "by", ts'),
    ("message_changes", "id, message_id, conv, kind, actor, ts", "id, message_id, conv, kind, actor, ts"),
)


def import_sqlite(data_dir: Path, database: Any) -> int:
    """Copy the rooms under ``data_dir`` into ``database``'s rooms schema; returns how many
    messages were copied (0, doing nothing, when there is no rooms database)."""
    path = data_dir / "rooms" / schema.FILENAME
    if not path.is_file():
        return 0
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = source.execute("PRAGMA user_version").fetchone()[0]
        if version != schema.SCHEMA_VERSION:
            raise RuntimeError(f"{path} has rooms schema {version}; this plugin imports schema {schema.SCHEMA_VERSION} "
                               "(start the single node once with this version to upgrade it)")
        with database.schema(pgschema.SCHEMA).connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (pgschema.WRITE_LOCK,))
            if not pgstore.is_empty(conn):
                raise RuntimeError("the cluster's rooms schema already holds rooms or messages; chatcore "
                                   "import-sqlite copies rooms only into an empty one (nothing was imported)")
            copy(source, conn, "rooms", "id, key, name, topic, private, history, created_by, created_ts, last_seq",
                 lambda row: (*row[:4], bool(row[4]), *row[5:]))
            copied = copy(source, conn, "messages",
                          "id, room_id, seq, sender, sender_key, ts, body, mentions, everyone, edited, deleted",
                          lambda row: (*row[:8], bool(row[8]), row[9], bool(row[10]), folded_words(row[6])),
                          extra=", words")
            for table, columns, target in TABLES:
                copy(source, conn, table, columns, tuple, target=target)
            newest = source.execute("SELECT seq FROM sqlite_sequence WHERE name = 'message_changes'").fetchone()
            pruned = source.execute("SELECT pruned_up_to FROM change_state").fetchone()
            conn.execute("UPDATE change_state SET last_id = %s, pruned_up_to = %s",
                         (int(newest[0]) if newest else 0, int(pruned[0]) if pruned else 0))
            for table in ("rooms", "messages"):  # new rows continue after the highest id
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST(MAX(id), 1), "
                             f"MAX(id) IS NOT NULL) FROM {table}")
    finally:
        source.close()
    log.info("rooms: imported %d message(s) from %s", copied, path)
    return copied


def copy(source: sqlite3.Connection, conn: Any, table: str, columns: str, convert: Any,
         target: str = "", extra: str = "") -> int:
    """Copy ``table``'s rows (those with an ``id`` in id order) in chunks, each through ``convert``."""
    names = (target or columns) + extra
    marks = ", ".join(["%s"] * len(names.split(",")))
    rows = source.execute(f"SELECT {columns} FROM {table}" + (" ORDER BY id" if columns.startswith("id,") else ""))
    copied = 0
    with conn.cursor() as cursor:
        while chunk := rows.fetchmany(CHUNK):
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", [convert(row) for row in chunk])
            copied += len(chunk)
    return copied
