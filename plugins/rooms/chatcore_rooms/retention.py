"""Chat's retention (``CHATCORE_CHAT_RETENTION_*``) applied to room messages.

The sweep is chat's (``chatcore_chat.retention.Retention``: candidates found on a read
connection, deleted in chunks through the writer); this module gives it the rooms database's
queries (this module's functions are its ``RetentionQueries``, a room being a conversation)
and the deletion, ``Prune``. A room's ``last_seq`` is never lowered, so sequence numbers keep
their meaning and a later message still gets the next one: the history just starts later.
What hung on a deleted message goes with it in the same transaction: its mentions, its pin,
its reactions (a cascade) and its words in the search index (chat's trigger); read markers
below it move up to it, so ``unread`` (``last_seq - read_seq``) counts only what is left.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from chatcore_chat.writer import Batch, Operation

if TYPE_CHECKING:
    from chatcore_rooms.service import RoomsService


def older_than(conn: sqlite3.Connection, cutoff_ms: int, limit: int) -> list[int]:
    """Ids of up to ``limit`` room messages stamped before ``cutoff_ms`` (retention by age)."""
    rows = conn.execute("SELECT id FROM messages WHERE ts < ? ORDER BY ts LIMIT ?", (cutoff_ms, limit)).fetchall()
    return [int(row[0]) for row in rows]


def over_count(conn: sqlite3.Connection, keep: int) -> list[int]:
    """Ids of the rooms holding more than ``keep`` messages (retention by count)."""
    rows = conn.execute("SELECT room_id FROM messages GROUP BY room_id HAVING COUNT(*) > ?", (keep,)).fetchall()
    return [int(row[0]) for row in rows]


def beyond_newest(conn: sqlite3.Connection, room_id: int, keep: int, limit: int) -> list[int]:
    """Ids of up to ``limit`` messages of the room older than its ``keep`` newest."""
    rows = conn.execute("SELECT id FROM messages WHERE room_id = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
                        (room_id, limit, keep)).fetchall()
    return [int(row[0]) for row in rows]


class Prune(Operation):
    """Delete room messages by id, with their mentions and pins; ``result`` is how many went."""

    def __init__(self, service: "RoomsService", ids: list[int]) -> None:
        super().__init__()
        self.service, self.ids = service, list(ids)
        self.unpinned: list[tuple[int, int]] = []

    def apply(self, conn: sqlite3.Connection, batch: Batch) -> None:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS pruned (id INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM temp.pruned")
        conn.executemany("INSERT INTO temp.pruned VALUES (?)", [(i,) for i in self.ids])
        gone = "(SELECT room_id, seq FROM messages WHERE id IN (SELECT id FROM temp.pruned))"
        unpinned = conn.execute(f"SELECT room_id, seq FROM pins WHERE (room_id, seq) IN {gone}").fetchall()
        conn.execute(f"DELETE FROM mentions WHERE (room_id, seq) IN {gone}")
        conn.execute(f"DELETE FROM pins WHERE (room_id, seq) IN {gone}")
        conn.execute("UPDATE members SET read_seq = p.seq FROM (SELECT room_id, MAX(seq) AS seq FROM messages "
                     "WHERE id IN (SELECT id FROM temp.pruned) GROUP BY room_id) AS p "
                     "WHERE members.room_id = p.room_id AND members.read_seq < p.seq")
        self.result = conn.execute("DELETE FROM messages WHERE id IN (SELECT id FROM temp.pruned)").rowcount
        conn.execute("DELETE FROM temp.pruned")
        self.unpinned = [(int(room_id), int(seq)) for room_id, seq in unpinned]

    def after(self, batch: Batch) -> None:
        for room_id, seq in self.unpinned:  # the pins of deleted messages went with them
            room = self.service.by_id(room_id)
            if room is not None and seq in room.pins:
                room.pins.remove(seq)


class PgQueries:
    """The same queries on PostgreSQL (cluster mode; every node sweeps, the deletions are idempotent)."""

    @staticmethod
    def older_than(conn: Any, cutoff_ms: int, limit: int) -> list[int]:
        rows = conn.execute("SELECT id FROM messages WHERE ts < %s ORDER BY ts LIMIT %s", (cutoff_ms, limit)).fetchall()
        return [int(row[0]) for row in rows]

    @staticmethod
    def over_count(conn: Any, keep: int) -> list[int]:
        rows = conn.execute("SELECT room_id FROM messages GROUP BY room_id HAVING COUNT(*) > %s", (keep,)).fetchall()
        return [int(row[0]) for row in rows]

    @staticmethod
    def beyond_newest(conn: Any, room_id: int, keep: int, limit: int) -> list[int]:
        rows = conn.execute("SELECT id FROM messages WHERE room_id = %s ORDER BY seq DESC LIMIT %s OFFSET %s",
                            (room_id, limit, keep)).fetchall()
        return [int(row[0]) for row in rows]


class PgPrune(Prune):
    """``Prune`` on PostgreSQL."""

    def apply(self, conn: Any, batch: Batch) -> None:
        gone = "(SELECT room_id, seq FROM messages WHERE id = ANY(%(ids)s))"
        ids = {"ids": self.ids}
        unpinned = conn.execute(f"SELECT room_id, seq FROM pins WHERE (room_id, seq) IN {gone}", ids).fetchall()
        conn.execute(f"DELETE FROM mentions WHERE (room_id, seq) IN {gone}", ids)
        conn.execute(f"DELETE FROM pins WHERE (room_id, seq) IN {gone}", ids)
        conn.execute("UPDATE members SET read_seq = p.seq FROM (SELECT room_id, MAX(seq) AS seq FROM messages "
                     "WHERE id = ANY(%(ids)s) GROUP BY room_id) AS p "
                     "WHERE members.room_id = p.room_id AND members.read_seq < p.seq", ids)
        self.result = conn.execute("DELETE FROM messages WHERE id = ANY(%(ids)s)", ids).rowcount
        self.unpinned = [(int(room_id), int(seq)) for room_id, seq in unpinned]
