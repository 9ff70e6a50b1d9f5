"""Storage of the message features in rooms: finding a room message, pins, and search.

Data access only, like ``store.py``; the columns, reactions table and FTS5 index are chat's
(``chatcore_chat.features``), created in ``rooms.sqlite3`` by ``schema.create_schema``.
"""

from __future__ import annotations

import sqlite3
from typing import Optional

from chatcore_chat import features
from chatcore_rooms.models import RoomMessage
from chatcore_rooms.store import MESSAGE_COLUMNS, _message

SEARCH_SQL = (
    "SELECT r.name, " + ", ".join(f"m.{column.strip()}" for column in MESSAGE_COLUMNS.split(",")) +
    " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
    " JOIN members mem ON mem.room_id = m.room_id AND mem.user_key = :user"
    " JOIN rooms r ON r.id = m.room_id"
    " WHERE messages_fts MATCH :match AND messages_fts.rowid < :before AND m.deleted = 0"
    " AND (r.history = 'shared' OR m.seq > mem.joined_seq)"
    " ORDER BY messages_fts.rowid DESC LIMIT :limit")


def message(conn: sqlite3.Connection, room_id: int, seq: int) -> Optional[RoomMessage]:
    """The room's message ``seq``, or None."""
    row = conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq = ?",
                       (room_id, seq)).fetchone()
    return _message(row) if row else None


def by_ids(conn: sqlite3.Connection, ids: list[int]) -> list[RoomMessage]:
    """The room messages with these row ids (a change replay's page)."""
    if not ids:
        return []
    return [_message(row) for row in conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({','.join('?' * len(ids))})", ids)]


def redact(conn: sqlite3.Connection, found: RoomMessage) -> bool:
    """Erase a room message (text, reactions), its mentions and its pin; True if it was pinned."""
    features.redact(conn, found.id)
    conn.execute("UPDATE messages SET mentions = '', everyone = 0 WHERE id = ?", (found.id,))
    conn.execute("DELETE FROM mentions WHERE room_id = ? AND seq = ?", (found.room_id, found.seq))
    return unpin(conn, found.room_id, found.seq)


def pin(conn: sqlite3.Connection, room_id: int, seq: int, by: str, ts_ms: int) -> bool:
    """Pin the message; False if it already was."""
    return conn.execute("INSERT OR IGNORE INTO pins VALUES (?, ?, ?, ?)", (room_id, seq, by, ts_ms)).rowcount > 0


def unpin(conn: sqlite3.Connection, room_id: int, seq: int) -> bool:
    return conn.execute("DELETE FROM pins WHERE room_id = ? AND seq = ?", (room_id, seq)).rowcount > 0


def pin_count(conn: sqlite3.Connection, room_id: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM pins WHERE room_id = ?", (room_id,)).fetchone()[0])


def pinned(conn: sqlite3.Connection, room_id: int) -> list[tuple[RoomMessage, str]]:
    """The room's pinned messages with who pinned each, in pin order."""
    columns = ", ".join(f"m.{column.strip()}" for column in MESSAGE_COLUMNS.split(","))
    return [(_message(row[:-1]), str(row[-1])) for row in conn.execute(
        f"SELECT {columns}, p.by FROM pins p JOIN messages m ON m.room_id = p.room_id AND m.seq = p.seq "
        "WHERE p.room_id = ? ORDER BY p.ts, p.seq", (room_id,))]


def search(conn: sqlite3.Connection, user_key: str, match: str, before: int, limit: int) -> list[tuple[str, RoomMessage]]:
    """(room name, message) of the user's rooms matching ``match`` below row id ``before``,
    newest first: only rooms they are a member of now, and in a ``joined`` room only what
    came after they joined."""
    rows = conn.execute(SEARCH_SQL, {"user": user_key, "match": match, "before": before, "limit": limit}).fetchall()
    return [(str(row[0]), _message(row[1:])) for row in rows]
