"""Storage shared by every conversation kind for edits, redactions, reactions and search.

Data access and validation only: no sessions, no pluggy. Chat's ``messages.sqlite3`` and
rooms' ``rooms.sqlite3`` both hold a ``messages`` table with ``id``, ``body``, ``edited`` and
``deleted`` columns; this module gives each the same ``reactions`` table and the same FTS5
index (``messages_fts``), kept in step with ``messages`` by triggers in the writer's
transaction: an insert indexes the text, an edit replaces it, a redaction (the body set to
``''`` with ``deleted = 1``) drops it. So search can never find an old text, and nothing
outside SQLite has to remember to update the index.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any, Callable, Iterable, Optional

from chatcore import CommandError, protocol
from chatcore_chat.faults import Refused

# Columns added to an existing ``messages`` table (an upgrade runs these once).
COLUMNS = (
    "ALTER TABLE messages ADD COLUMN edited INTEGER",  # ms of the last edit, NULL if never edited
    "ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0",  # 1: redacted, body erased
)
REACTIONS = """
CREATE TABLE IF NOT EXISTS reactions (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    emoji      TEXT NOT NULL,
    user_key   TEXT NOT NULL,      -- casefolded name of who reacted
    user       TEXT NOT NULL,      -- their display name
    ts         INTEGER NOT NULL,   -- ms: the order names are listed in
    PRIMARY KEY (message_id, emoji, user_key)
) WITHOUT ROWID;
"""
# External-content FTS5: the index holds tokens, the text stays in ``messages`` (stored once).
# New messages are indexed in bulk after their commit (``index_new``), not by a trigger on each
# insert: a row's trigger cost ~13 us per message and, at one message per transaction, ~45 us,
# all of it before the chat_ack; ``INSERT ... SELECT`` of the new rows costs ~2-4 us each.
# ``fts_state.up_to`` is the newest id indexed: edits and deletions of rows up to it keep the
# index in step by trigger; rows after it are indexed as they are then (or not, once deleted).
FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    body, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS fts_state (up_to INTEGER NOT NULL);
"""
FTS_TRIGGERS = """
DROP TRIGGER IF EXISTS messages_fts_insert;
DROP TRIGGER IF EXISTS messages_fts_delete;
DROP TRIGGER IF EXISTS messages_fts_update;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN OLD.deleted = 0 AND OLD.id <= (SELECT up_to FROM fts_state)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, deleted ON messages
    WHEN OLD.id <= (SELECT up_to FROM fts_state)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) SELECT 'delete', OLD.id, OLD.body WHERE OLD.deleted = 0;
    INSERT INTO messages_fts (rowid, body) SELECT NEW.id, NEW.body WHERE NEW.deleted = 0;
END;
"""
FTS_OBJECTS = ("messages_fts_insert", "messages_fts_delete", "messages_fts_update")


def index_new(conn: sqlite3.Connection) -> int:
    """Index the messages stored since the last call (the writer's connection, inside its
    transaction); returns how many ids it covered."""
    (up_to,) = conn.execute("SELECT up_to FROM fts_state").fetchone()
    (newest,) = conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()
    if newest <= up_to:
        return 0
    conn.execute("INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages"
                 " WHERE id > ? AND id <= ? AND deleted = 0", (up_to, newest))
    conn.execute("UPDATE fts_state SET up_to = ?", (newest,))
    return int(newest - up_to)


def defer_indexing(conn: sqlite3.Connection) -> None:
    """Inside the caller's transaction: an index kept by per-insert triggers (as this session's
    first schema 3 did) switches to bulk indexing; everything stored so far is indexed already."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'").fetchone() is None:
        return
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'fts_state'").fetchone() is None:
        conn.execute("CREATE TABLE fts_state (up_to INTEGER NOT NULL)")
        conn.execute("INSERT INTO fts_state SELECT coalesce(max(id), 0) FROM messages")
    run_script(conn, FTS_TRIGGERS)


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run each statement of ``script`` inside the caller's transaction (``executescript`` would
    commit it first)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""


def add_features(conn: sqlite3.Connection, fts: bool = True) -> None:
    """Inside the caller's upgrade transaction: the new columns, the reactions table and the
    search index, which is then built from the messages already stored (an existing data
    directory keeps working and its old messages are found). ``fts=False`` leaves the index
    out (the benchmark's write path without it)."""
    have = {str(row[1]) for row in conn.execute("PRAGMA table_info(messages)")}
    for statement in COLUMNS:
        if statement.split()[5] not in have:
            conn.execute(statement)
    run_script(conn, REACTIONS)
    if fts:
        run_script(conn, FTS)
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
        conn.execute("DELETE FROM fts_state")
        conn.execute("INSERT INTO fts_state SELECT coalesce(max(id), 0) FROM messages")
        run_script(conn, FTS_TRIGGERS)
        if sqlite3.sqlite_version_info >= (3, 42, 0):  # deletes leave no tokens behind in the index
            conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1)")


def drop_search(conn: sqlite3.Connection) -> None:
    """Remove the index and its triggers (the benchmark's write path without FTS)."""
    for trigger in FTS_OBJECTS:
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    conn.execute("DROP TABLE IF EXISTS messages_fts")
    conn.execute("DROP TABLE IF EXISTS fts_state")


# -- validation ------------------------------------------------------------------------------

def check_emoji(emoji: Any, max_length: int) -> str:
    """A reaction: 1 to ``max_length`` characters, no spaces or control characters."""
    if not isinstance(emoji, str) or not emoji:
        raise CommandError("bad_request", "field 'emoji' must be a non-empty string")
    if len(emoji) > max_length:
        raise CommandError("bad_emoji", f"a reaction is at most {max_length} characters")
    if any(char.isspace() or ord(char) < 32 or 0x7F <= ord(char) < 0xA0 for char in emoji):
        raise CommandError("bad_emoji", "a reaction has no spaces or control characters")
    return emoji


# -- writes (the writer's connection, inside its transaction) --------------------------------

def edit(conn: sqlite3.Connection, message_id: int, text: str, ts_ms: int) -> None:
    """Replace the text (the index follows by trigger) and stamp the edit."""
    conn.execute("UPDATE messages SET body = ?, edited = ? WHERE id = ?", (text, ts_ms, message_id))


def redact(conn: sqlite3.Connection, message_id: int) -> None:
    """Erase the text and reactions: what is left is a tombstone (the index drops it by trigger;
    the connection's ``secure_delete`` overwrites the freed bytes)."""
    conn.execute("UPDATE messages SET body = '', edited = NULL, deleted = 1 WHERE id = ?", (message_id,))
    conn.execute("DELETE FROM reactions WHERE message_id = ?", (message_id,))


def react(conn: sqlite3.Connection, message_id: int, emoji: str, user: str, add: bool, ts_ms: int,
          most: int) -> bool:
    """Add or remove ``user``'s ``emoji`` on the message; False if nothing changed. A new
    emoji beyond ``most`` distinct ones on the message is refused (``too_many_reactions``)."""
    key = user.casefold()
    if not add:
        return conn.execute("DELETE FROM reactions WHERE message_id = ? AND emoji = ? AND user_key = ?",
                            (message_id, emoji, key)).rowcount > 0
    known = conn.execute("SELECT 1 FROM reactions WHERE message_id = ? AND emoji = ? LIMIT 1",
                         (message_id, emoji)).fetchone()
    if known is None:
        distinct = conn.execute("SELECT COUNT(DISTINCT emoji) FROM reactions WHERE message_id = ?",
                                (message_id,)).fetchone()[0]
        if distinct >= most:
            raise Refused("too_many_reactions", f"a message carries at most {most} different reactions")
    return conn.execute("INSERT OR IGNORE INTO reactions VALUES (?, ?, ?, ?, ?)",
                        (message_id, emoji, key, user, ts_ms)).rowcount > 0


# -- reads (any connection) ------------------------------------------------------------------

def reactions(conn: sqlite3.Connection, ids: Iterable[int], names: int) -> dict[int, list[dict[str, Any]]]:
    """Aggregated reactions of each message that has any: [{emoji, count, users}] in the order
    each emoji first came, ``users`` the first ``names`` who reacted (a frame stays small)."""
    wanted = sorted(set(ids))
    found: dict[int, dict[str, dict[str, Any]]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for message_id, emoji, user in conn.execute(
                f"SELECT message_id, emoji, user FROM reactions WHERE message_id IN ({marks}) "
                "ORDER BY message_id, ts, emoji, user_key", chunk):
            entry = found.setdefault(int(message_id), {}).setdefault(str(emoji), {"emoji": emoji, "count": 0,
                                                                                 "users": []})
            entry["count"] += 1
            if len(entry["users"]) < names:
                entry["users"].append(user)
    return {message_id: list(entries.values()) for message_id, entries in found.items()}


def stamp_fields(edited_ms: Optional[int], deleted: bool) -> dict[str, Any]:
    """``edited`` (ISO time) and ``deleted: true``, as history items and search hits carry them."""
    fields: dict[str, Any] = {}
    if deleted:
        fields["deleted"] = True
    elif edited_ms is not None:
        fields["edited"] = protocol.timestamp(edited_ms)
    return fields


# -- typing ----------------------------------------------------------------------------------

class Throttle:
    """At most one event per key every ``interval`` seconds (typing indicators). Keys idle for
    longer are forgotten once the table passes ``keep`` entries, so it never grows without bound."""

    def __init__(self, interval: float, clock: Callable[[], float], keep: int = 10_000) -> None:
        self.interval, self.clock, self.keep = interval, clock, keep
        self._last: dict[Any, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: Any) -> bool:
        """True (and remember now) if ``key`` had no event in the last ``interval`` seconds."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            self._last[key] = now
            if len(self._last) > self.keep:
                self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
            return True
