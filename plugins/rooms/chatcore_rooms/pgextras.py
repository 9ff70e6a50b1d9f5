"""The message features of rooms on PostgreSQL (cluster mode): finding a room message, edits,
redactions, pins, search and the change log's replay query, with the names and results of
``extras.py`` and ``store.py`` on SQLite. Search compares whole words (case and accents
dropped) against each message's folded words (``messages.words``), as chat's ``pgfeatures``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from chatcore_chat.pgstore import folded_words
from chatcore_rooms.models import RoomMessage
from chatcore_rooms.store import MESSAGE_COLUMNS, _message


def message(conn: Any, room_id: int, seq: int) -> Optional[RoomMessage]:
    row = conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = %s AND seq = %s",
                       (room_id, seq)).fetchone()
    return _message(row) if row else None


def by_ids(conn: Any, ids: list[int]) -> list[RoomMessage]:
    return [_message(row) for row in conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY(%s)",
                                                  (list(ids),))]


def edit(conn: Any, message_id: int, text: str, ts_ms: int) -> None:
    conn.execute("UPDATE messages SET body = %s, edited = %s, words = %s WHERE id = %s",
                 (text, ts_ms, folded_words(text), message_id))


def redact(conn: Any, found: RoomMessage) -> bool:
    """``extras.redact``: text, words, reactions, mentions and pin gone; True if it was pinned."""
    conn.execute("UPDATE messages SET body = '', edited = NULL, deleted = true, words = '', mentions = '', "
                 "everyone = false WHERE id = %s", (found.id,))
    conn.execute("DELETE FROM reactions WHERE message_id = %s", (found.id,))
    conn.execute("DELETE FROM mentions WHERE room_id = %s AND seq = %s", (found.room_id, found.seq))
    return unpin(conn, found.room_id, found.seq)


def pin(conn: Any, room_id: int, seq: int, by: str, ts_ms: int) -> bool:
    return bool(conn.execute("INSERT INTO pins VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                             (room_id, seq, by, ts_ms)).rowcount)


def unpin(conn: Any, room_id: int, seq: int) -> bool:
    return bool(conn.execute("DELETE FROM pins WHERE room_id = %s AND seq = %s", (room_id, seq)).rowcount)


def pin_count(conn: Any, room_id: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM pins WHERE room_id = %s", (room_id,)).fetchone()[0])


def pinned(conn: Any, room_id: int) -> list[tuple[RoomMessage, str]]:
    columns = ", ".join(f"m.{column.strip()}" for column in MESSAGE_COLUMNS.split(","))
    return [(_message(row[:-1]), str(row[-1])) for row in conn.execute(
        f'SELECT {columns}, p."by" FROM pins p JOIN messages m ON m.room_id = p.room_id AND m.seq = p.seq '
        "WHERE p.room_id = %s ORDER BY p.ts, p.seq", (room_id,))]


def search(conn: Any, user_key: str, words: Sequence[str], before: int, limit: int) -> list[tuple[str, RoomMessage]]:
    """``extras.search`` by the messages' folded words (whole words, as ``pgfeatures.search``)."""
    params: dict[str, Any] = {"user": user_key, "before": before, "limit": limit}
    having = []
    for index, word in enumerate(words):
        params[f"w{index}"] = f"% {word} %"
        having.append(f"m.words LIKE %(w{index})s")
    columns = ", ".join(f"m.{column.strip()}" for column in MESSAGE_COLUMNS.split(","))
    rows = conn.execute(
        f"SELECT r.name, {columns} FROM messages m JOIN members mem ON mem.room_id = m.room_id AND mem.user_key = %(user)s"
        " JOIN rooms r ON r.id = m.room_id WHERE m.id < %(before)s AND NOT m.deleted"
        " AND (r.history = 'shared' OR m.seq > mem.joined_seq) AND " + " AND ".join(having or ["true"]) +
        " ORDER BY m.id DESC LIMIT %(limit)s", params).fetchall()
    return [(str(row[0]), _message(row[1:])) for row in rows]


def changes_since(conn: Any, readable: Sequence[tuple[str, int]], since: int, up_to: int, cursor: int,
                  limit: int) -> list[tuple[int, int, str, Optional[str]]]:
    """``store.changes_since``."""
    rows = conn.execute(
        "WITH seen(conv, after_seq) AS (SELECT * FROM unnest(%s::text[], %s::bigint[]))"
        " SELECT c.message_id, MAX(c.id) AS last, string_agg(DISTINCT c.kind, ','),"
        " (SELECT d.actor FROM message_changes d WHERE d.message_id = c.message_id AND d.kind = 'delete'"
        "  ORDER BY d.id DESC LIMIT 1)"
        " FROM message_changes c JOIN seen ON seen.conv = c.conv JOIN messages m ON m.id = c.message_id"
        " WHERE c.id > %s AND c.id <= %s AND m.seq > seen.after_seq"
        " GROUP BY c.message_id HAVING MAX(c.id) > %s ORDER BY last LIMIT %s",
        ([conv for conv, _ in readable], [seq for _, seq in readable], since, up_to, cursor, limit)).fetchall()
    return [(int(m), int(last), str(kinds), None if by is None else str(by)) for m, last, kinds, by in rows]


