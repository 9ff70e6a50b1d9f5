"""``chatcore import-sqlite`` for chat: a single node's ``<data>/chat/messages.sqlite3`` copied
into the cluster's ``chat`` schema, ids, timestamps and pending deliveries as they were.

Each conversation's messages get seqs 1, 2, … in id order (SQLite has none), and its row in
``conversations`` the last of them; the schema's triggers fill the pending and daily counters
as the rows go in (in id order, so each sender's count is the newest day's). Reactions and the
change log (ids, and how far it was pruned) come along, so a client's ``changes_since`` stays
valid. Search needs nothing more: each row's folded words are computed as it is copied.
Refuses a schema that holds any message.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, Iterator

from chatcore_chat import pgstore, store

log = logging.getLogger(__name__)
CHUNK = 5000  # rows read from SQLite and written per round


def import_sqlite(data_dir: Path, database: Any) -> int:
    """Copy the history under ``data_dir`` into ``database``'s chat schema; returns how many
    messages were copied (0, doing nothing, when there is no history file)."""
    path = data_dir / "chat" / store.FILENAME
    if not path.is_file():
        return 0
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = source.execute("PRAGMA user_version").fetchone()[0]
        if version > store.SCHEMA_VERSION:
            raise RuntimeError(f"{path} has chat schema {version}, newer than this plugin knows "
                               f"({store.SCHEMA_VERSION})")
        has_features = version >= 3
        schema = database.schema(pgstore.SCHEMA)
        with schema.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (pgstore.WRITE_LOCK,))
            if not pgstore.is_empty(conn):
                raise RuntimeError("the cluster's chat schema already holds messages; chatcore import-sqlite "
                                   "copies a history only into an empty one (nothing was imported)")
            copied = _copy(source, conn, has_features)
            if has_features:
                _copy_features(source, conn, version >= 4)
            conn.execute("SELECT setval(pg_get_serial_sequence('messages', 'id'), GREATEST(MAX(id), 1), MAX(id) IS NOT NULL) "
                         "FROM messages")
    finally:
        source.close()
    log.info("chat: imported %d message(s) from %s", copied, path)
    return copied


def _copy_features(source: sqlite3.Connection, conn: Any, has_log: bool) -> None:
    """Reactions, and (schema 4) the change log with its counters."""
    with conn.cursor() as cursor:
        cursor.executemany('INSERT INTO reactions (message_id, emoji, user_key, "user", ts) VALUES (%s, %s, %s, %s, %s)',
                           source.execute("SELECT message_id, emoji, user_key, user, ts FROM reactions"))
        if not has_log:
            return
        cursor.executemany("INSERT INTO message_changes (id, message_id, conv, kind, actor, ts) "
                           "VALUES (%s, %s, %s, %s, %s, %s)",
                           source.execute("SELECT id, message_id, conv, kind, actor, ts FROM message_changes"))
    row = source.execute("SELECT seq FROM sqlite_sequence WHERE name = 'message_changes'").fetchone()
    pruned = source.execute("SELECT pruned_up_to FROM change_state").fetchone()
    conn.execute("UPDATE change_state SET last_id = %s, pruned_up_to = %s",
                 (int(row[0]) if row else 0, int(pruned[0]) if pruned else 0))


def _rows(source: sqlite3.Connection, has_features: bool) -> Iterator[list[tuple[Any, ...]]]:
    columns = "id, conv, sender, recipient, ts, body, pending_for, " + \
        ("edited, deleted" if has_features else "NULL, 0")
    after = 0
    while True:
        rows = source.execute(f"SELECT {columns} FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                              (after, CHUNK)).fetchall()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _copy(source: sqlite3.Connection, conn: Any, has_features: bool) -> int:
    seqs: dict[str, int] = {}
    copied = 0
    for rows in _rows(source, has_features):
        batch = []
        for id_, conv, sender, recipient, ts, body, pending_for, edited, deleted in rows:
            seqs[conv] = seq = seqs.get(conv, 0) + 1
            batch.append((id_, conv, seq, sender, recipient, ts, body, pending_for, edited, bool(deleted),
                          pgstore.folded_words(body)))
        fresh = sorted({row[1] for row in batch})
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO conversations VALUES (%s, %s, %s, 0) ON CONFLICT (conv) DO NOTHING",
                               [(conv, *pgstore.parts(conv)) for conv in fresh])
            cursor.executemany(
                "INSERT INTO messages (id, conv, seq, sender, recipient, ts, body, pending_for, edited, deleted, words) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", batch)
        copied += len(batch)
    with conn.cursor() as cursor:
        cursor.executemany("UPDATE conversations SET last_seq = %s WHERE conv = %s",
                           [(seq, conv) for conv, seq in seqs.items()])
    return copied

