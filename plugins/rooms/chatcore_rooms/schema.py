"""The rooms database's schema: its tables, and creating or upgrading them at start.

DDL only: no queries the plugin runs while serving (those are ``store.py``). The connection
is the chat plugin's (``chatcore_chat.store.connect``). ``PRAGMA user_version`` holds the
schema version; a database written by a newer plugin is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Optional

from chatcore_chat.changelog import SCHEMA as CHANGE_LOG
from chatcore_chat.features import add_features, defer_indexing, run_script
from chatcore_chat.quotas import SENDER_DAYS, count_sender_days

FILENAME = "rooms.sqlite3"
SCHEMA_VERSION = 4  # 2: edits, redactions, reactions, pins, search (chatcore_chat.features); 3: chat's limits;
# 4: the change log (chat's, ``conv`` = the room's id; ``replay.py``)
SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a room made again is a new room
    key        TEXT NOT NULL UNIQUE,   -- casefolded name
    name       TEXT NOT NULL,          -- as created
    topic      TEXT NOT NULL,
    private    INTEGER NOT NULL,       -- 1: only invited users may join
    history    TEXT NOT NULL,          -- 'shared' or 'joined'
    created_by TEXT NOT NULL,
    created_ts INTEGER NOT NULL,       -- milliseconds, UTC
    last_seq   INTEGER NOT NULL DEFAULT 0  -- the newest message's seq (0: none yet)
);
CREATE TABLE IF NOT EXISTS members (
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_key   TEXT NOT NULL,          -- casefolded username
    user       TEXT NOT NULL,          -- display name
    role       TEXT NOT NULL,          -- 'owner', 'moderator' or 'member'
    joined_seq INTEGER NOT NULL,       -- the room's last_seq when they joined
    joined_ts  INTEGER NOT NULL,
    read_seq   INTEGER NOT NULL,       -- read marker: everything up to this seq is read
    PRIMARY KEY (room_id, user_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members (user_key);
CREATE TABLE IF NOT EXISTS bans (
    room_id  INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_key TEXT NOT NULL,
    user     TEXT NOT NULL,
    by       TEXT NOT NULL,
    reason   TEXT NOT NULL,
    ts       INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bans_by_user ON bans (user_key);
CREATE TABLE IF NOT EXISTS invites (
    room_id  INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_key TEXT NOT NULL,
    by       TEXT NOT NULL,
    ts       INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS invites_by_user ON invites (user_key);
CREATE TABLE IF NOT EXISTS messages (
    id         INTEGER PRIMARY KEY,
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    sender     TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    body       TEXT NOT NULL,
    mentions   TEXT NOT NULL,          -- display names mentioned, separated by spaces
    everyone   INTEGER NOT NULL,       -- 1: @room
    UNIQUE (room_id, seq)
);
CREATE INDEX IF NOT EXISTS messages_by_sender ON messages (sender_key);
CREATE TABLE IF NOT EXISTS mentions (
    user_key TEXT NOT NULL,
    room_id  INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (user_key, room_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mentions_by_room ON mentions (room_id);
CREATE TABLE IF NOT EXISTS private_reads (
    user_key TEXT NOT NULL,            -- the reader
    peer_key TEXT NOT NULL,            -- the other user of the private conversation
    peer     TEXT NOT NULL,            -- their display name
    read_id  INTEGER NOT NULL,         -- chat message id: everything up to it is read
    PRIMARY KEY (user_key, peer_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS private_reads_by_peer ON private_reads (peer_key);
"""
PINS = """
CREATE TABLE IF NOT EXISTS pins (
    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    by      TEXT NOT NULL,         -- the moderator who pinned it
    ts      INTEGER NOT NULL,
    PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;
"""


# Schema 3: chat's limits. ``sender_days`` (chat's table and trigger, ``chatcore_chat.quotas``)
# counts each sender's room messages per UTC day for the daily quotas; retention by age finds
# old messages by ``ts``.
LIMITS = """
CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);
"""


def create_schema(conn: sqlite3.Connection, fts: bool = True, now_ms: Optional[int] = None) -> None:
    """Create the tables if missing, bring schema 1, 2 or 3 up to date in one transaction
    (``fts=False``: without the search index, for the benchmark); refuse a database written by
    a newer schema. An upgrade counts what each sender stored on the day of ``now_ms`` (now)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"rooms database schema {version} is newer than this plugin understands ({SCHEMA_VERSION})")
    if version == SCHEMA_VERSION:
        if _indexed_per_insert(conn):
            conn.execute("BEGIN IMMEDIATE")  # an index kept by per-insert triggers: bulk from now on
            defer_indexing(conn)
            conn.execute("COMMIT")
        return
    try:
        conn.executescript("BEGIN IMMEDIATE;" + SCHEMA)
        if version < 2:
            add_features(conn, fts)  # a schema-1 database: its messages are indexed here
            run_script(conn, PINS)
        elif _indexed_per_insert(conn):
            defer_indexing(conn)
        if version < 3:
            run_script(conn, SENDER_DAYS + LIMITS)
            count_sender_days(conn, int(time.time() * 1000) if now_ms is None else now_ms)
        run_script(conn, CHANGE_LOG)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _indexed_per_insert(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts_insert'").fetchone() is not None
