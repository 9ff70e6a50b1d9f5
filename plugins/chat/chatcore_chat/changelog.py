"""The change log of chat's messages (schema 4): every edit, redaction and reaction change gets a
server-wide change id, written in the writer's transaction that made the change.

Data access only: no sessions, no pluggy. A reconnecting client names the newest change id it
saw (``login`` ``changes_since``) and is replayed the changes since then (``replay.py``), so
edits, deletions and reactions made while it was away reach messages it already shows.

Ids come from ``AUTOINCREMENT``: one writer, each id the previous plus one, never reused even
after pruning, and a rolled-back change takes its id back with it, so the log is gapless. Rows
go with their message (``ON DELETE CASCADE``: retention, account removal); pruning by age and
count (``prune``) records the highest id it removed in ``change_state``, so a client whose
cursor is older learns that its replay would be incomplete. The log keeps no text: who did
what to which message, when; the replay reads the message's state as it is now.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Iterable, Optional

EDIT, DELETE, REACTIONS = "edit", "delete", "reactions"
KINDS = (EDIT, DELETE, REACTIONS)
SCHEMA = """
CREATE TABLE IF NOT EXISTS message_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- the change id: gapless, increasing, never reused
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    conv       TEXT NOT NULL,     -- the message's conversation (who may be replayed the change)
    kind       TEXT NOT NULL,     -- 'edit', 'delete' or 'reactions'
    actor      TEXT NOT NULL,     -- display name of who made it ('' for the server itself)
    ts         INTEGER NOT NULL   -- ms since the Unix epoch
);
CREATE INDEX IF NOT EXISTS message_changes_message ON message_changes (message_id);  -- cascades, deleted_by
CREATE TABLE IF NOT EXISTS change_state (pruned_up_to INTEGER NOT NULL);  -- highest id pruned (0: none)
INSERT INTO change_state SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM change_state);
"""
# the conversations ``:user`` may read: the room and every private one they are part of
READABLE = ("(c.conv = '' OR substr(c.conv, 1, length(:user) + 1) = :user || char(10)"
            " OR substr(c.conv, -length(:user) - 1) = char(10) || :user)")


@dataclass(frozen=True)
class Changed:
    """One message changed since a cursor: its newest change id, the kinds, who deleted it."""

    message_id: int
    change_id: int
    kinds: frozenset[str]
    deleted_by: Optional[str]


def record(conn: sqlite3.Connection, message_id: int, conv: str, kind: str, actor: str, ts_ms: int) -> int:
    """Log one change (inside the writer's transaction); returns its change id."""
    cursor = conn.execute("INSERT INTO message_changes (message_id, conv, kind, actor, ts) VALUES (?, ?, ?, ?, ?)",
                          (message_id, conv, kind, actor, ts_ms))
    return int(cursor.lastrowid or 0)


def newest(conn: sqlite3.Connection) -> int:
    """The newest change id handed out so far (0 for none), pruned ones included."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'message_changes'").fetchone()
    return int(row[0]) if row else 0


def pruned_up_to(conn: sqlite3.Connection) -> int:
    """The highest change id pruned: a cursor below it cannot be replayed completely."""
    return int(conn.execute("SELECT pruned_up_to FROM change_state").fetchone()[0])


def prune(conn: sqlite3.Connection, cutoff_ms: Optional[int], keep: int, newest_id: Optional[int] = None,
          chunk: int = 500) -> int:
    """Drop up to ``chunk`` of the oldest changes: those stamped before ``cutoff_ms`` (None: no
    age limit) and those older than the ``keep`` newest change ids (0: no count limit).
    ``newest_id``: the change just recorded (else read). Runs with each change, so usually one
    indexed read of the oldest row and nothing else. Returns how many went."""
    row = conn.execute("SELECT id, ts FROM message_changes ORDER BY id LIMIT 1").fetchone()
    if row is None:
        return 0
    oldest, oldest_ts = int(row[0]), int(row[1])
    up_to = 0
    if keep > 0:
        up_to = min(oldest + chunk - 1, (newest(conn) if newest_id is None else newest_id) - keep)
    if cutoff_ms is not None and oldest_ts < cutoff_ms:  # stamps never go back: the old ones come first
        found = conn.execute("SELECT MAX(id) FROM message_changes WHERE id < ? AND ts < ?",
                             (oldest + chunk, cutoff_ms)).fetchone()
        up_to = max(up_to, int(found[0] or 0))
    if up_to < oldest:
        return 0
    gone = conn.execute("DELETE FROM message_changes WHERE id <= ?", (up_to,)).rowcount
    conn.execute("UPDATE change_state SET pruned_up_to = MAX(pruned_up_to, ?)", (up_to,))
    return int(gone)


def since(conn: sqlite3.Connection, user_key: str, after: int, up_to: int, limit: int,
          cursor: Optional[int] = None) -> list[Changed]:
    """The messages ``user_key`` may read that changed with ``after < change id <= up_to``, each
    once, ordered by their newest change id, at most ``limit``; a later page names the last
    change id of the one before as ``cursor`` (the kinds still count every change after ``after``)."""
    rows = conn.execute(
        "SELECT c.message_id, MAX(c.id) AS last, group_concat(DISTINCT c.kind),"
        " (SELECT d.actor FROM message_changes d WHERE d.message_id = c.message_id AND d.kind = 'delete'"
        "  ORDER BY d.id DESC LIMIT 1)"
        f" FROM message_changes c WHERE c.id > :after AND c.id <= :up_to AND {READABLE}"
        " GROUP BY c.message_id HAVING last > :cursor ORDER BY last LIMIT :limit",
        {"after": after, "up_to": up_to, "user": user_key, "limit": limit,
         "cursor": after if cursor is None else cursor}).fetchall()
    return [Changed(int(message_id), int(last), frozenset(str(kinds).split(",")), None if by is None else str(by))
            for message_id, last, kinds, by in rows]


def reacted_by(conn: sqlite3.Connection, user_key: str) -> list[tuple[int, str]]:
    """The messages (id, conversation) carrying reactions of ``user_key`` (before an account removal)."""
    return [(int(message_id), str(conv)) for message_id, conv in conn.execute(
        "SELECT DISTINCT r.message_id, m.conv FROM reactions r JOIN messages m ON m.id = r.message_id"
        " WHERE r.user_key = ?", (user_key,))]


def record_many(conn: sqlite3.Connection, messages: Iterable[tuple[int, str]], kind: str, actor: str,
                ts_ms: int) -> None:
    """Log the same change to several messages that still exist (an account removal's reactions)."""
    for message_id, conv in messages:
        if conn.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone():
            record(conn, message_id, conv, kind, actor, ts_ms)
