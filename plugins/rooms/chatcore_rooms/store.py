"""SQLite queries of the rooms plugin: loading the rooms, the writer's changes, and reads.

Data access only: no sessions, no pluggy; the schema is ``schema.py``, the row models
``models.py``. The connection, the WAL checkpointer and the reader pool are the chat
plugin's (``chatcore_chat.store``): one writer connection changes the database, readers
borrow pooled connections alongside it. Every room message is one row keyed by (room, seq);
``rooms.last_seq`` is the room's sequence, advanced in the same transaction as the insert,
so a room's messages are numbered 1, 2, 3, ... without gaps.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from chatcore import protocol
from chatcore_rooms.models import Member, Room, RoomMessage


def load(conn: sqlite3.Connection) -> dict[str, Room]:
    """Every room with its members, by key (once, at start)."""
    rooms: dict[int, Room] = {}
    for id_, key, name, topic, private, history, created_by, last_seq in conn.execute(
            "SELECT id, key, name, topic, private, history, created_by, last_seq FROM rooms"):
        rooms[id_] = Room(id_, key, name, topic, bool(private), history, created_by, last_seq)
    for room_id, user_key, user, role, joined_seq in conn.execute(
            "SELECT room_id, user_key, user, role, joined_seq FROM members"):
        rooms[room_id].members[user_key] = Member(user_key, user, role, joined_seq)
    for room_id, seq in conn.execute("SELECT room_id, seq FROM pins ORDER BY ts, seq"):
        rooms[room_id].pins.append(int(seq))
    return {room.key: room for room in rooms.values()}


# -- writes (the writer's connection, inside its transaction) --------------------------------

def insert_room(conn: sqlite3.Connection, key: str, name: str, topic: str, private: bool, history: str,
                creator: str, ts_ms: int) -> int:
    cursor = conn.execute("INSERT INTO rooms (key, name, topic, private, history, created_by, created_ts) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)", (key, name, topic, int(private), history, creator, ts_ms))
    return int(cursor.lastrowid or 0)


def room_row(conn: sqlite3.Connection, key: str) -> Optional[tuple[int, str, bool, int]]:
    """(id, name, private, last_seq) of the room, or None."""
    row = conn.execute("SELECT id, name, private, last_seq FROM rooms WHERE key = ?", (key,)).fetchone()
    return (int(row[0]), str(row[1]), bool(row[2]), int(row[3])) if row else None


def room_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM rooms").fetchone()[0])


def role(conn: sqlite3.Connection, room_id: int, user_key: str) -> Optional[str]:
    row = conn.execute("SELECT role FROM members WHERE room_id = ? AND user_key = ?", (room_id, user_key)).fetchone()
    return str(row[0]) if row else None


def member_count(conn: sqlite3.Connection, room_id: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM members WHERE room_id = ?", (room_id,)).fetchone()[0])


def memberships(conn: sqlite3.Connection, user_key: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM members WHERE user_key = ?", (user_key,)).fetchone()[0])


def add_member(conn: sqlite3.Connection, room_id: int, user_key: str, user: str, role_: str, seq: int,
               ts_ms: int) -> None:
    """Make the user a member whose read marker and join point are ``seq``; drop their invitation."""
    conn.execute("INSERT INTO members VALUES (?, ?, ?, ?, ?, ?, ?)", (room_id, user_key, user, role_, seq, ts_ms, seq))
    conn.execute("DELETE FROM invites WHERE room_id = ? AND user_key = ?", (room_id, user_key))


def remove_member(conn: sqlite3.Connection, room_id: int, user_key: str) -> None:
    conn.execute("DELETE FROM members WHERE room_id = ? AND user_key = ?", (room_id, user_key))
    conn.execute("DELETE FROM mentions WHERE user_key = ? AND room_id = ?", (user_key, room_id))


def set_role(conn: sqlite3.Connection, room_id: int, user_key: str, role_: str) -> None:
    conn.execute("UPDATE members SET role = ? WHERE room_id = ? AND user_key = ?", (role_, room_id, user_key))


def ban(conn: sqlite3.Connection, room_id: int, user_key: str, user: str, by: str, reason: str, ts_ms: int) -> None:
    conn.execute("INSERT INTO bans VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (room_id, user_key) DO UPDATE SET "
                 "by = excluded.by, reason = excluded.reason, ts = excluded.ts", (room_id, user_key, user, by, reason, ts_ms))
    conn.execute("DELETE FROM invites WHERE room_id = ? AND user_key = ?", (room_id, user_key))


def unban(conn: sqlite3.Connection, room_id: int, user_key: str) -> bool:
    return conn.execute("DELETE FROM bans WHERE room_id = ? AND user_key = ?", (room_id, user_key)).rowcount > 0


def ban_reason(conn: sqlite3.Connection, room_id: int, user_key: str) -> Optional[str]:
    row = conn.execute("SELECT reason FROM bans WHERE room_id = ? AND user_key = ?", (room_id, user_key)).fetchone()
    return str(row[0]) if row else None


def invite(conn: sqlite3.Connection, room_id: int, user_key: str, by: str, ts_ms: int) -> None:
    conn.execute("INSERT OR REPLACE INTO invites VALUES (?, ?, ?, ?)", (room_id, user_key, by, ts_ms))


def invited(conn: sqlite3.Connection, room_id: int, user_key: str) -> bool:
    return conn.execute("SELECT 1 FROM invites WHERE room_id = ? AND user_key = ?", (room_id, user_key)).fetchone() is not None


def set_topic(conn: sqlite3.Connection, room_id: int, topic: str) -> None:
    conn.execute("UPDATE rooms SET topic = ? WHERE id = ?", (topic, room_id))


def delete_room(conn: sqlite3.Connection, room_id: int) -> None:
    """The room and everything of it (members, bans, invitations, messages, mentions: cascades)."""
    conn.execute("DELETE FROM rooms WHERE id = ?", (room_id,))


def insert_message(conn: sqlite3.Connection, room_id: int, sender: str, ts_ms: int, text: str,
                   mentions: Sequence[tuple[str, str]], everyone: bool) -> RoomMessage:
    """Append a message as the room's next seq, advance the sender's read marker to it, and
    record a mention for each (user_key, display name) in ``mentions``. The INSERT comes first:
    chat's daily quota check (a TEMP trigger, ``chatcore_chat.quotas``) may abort it, and then
    nothing has changed (the room's counter included), so the refusal leaves no gap."""
    seq = int(conn.execute("SELECT last_seq + 1 FROM rooms WHERE id = ?", (room_id,)).fetchone()[0])
    sender_key = sender.casefold()
    names = tuple(name for _, name in mentions)
    row = conn.execute("INSERT INTO messages (room_id, seq, sender, sender_key, ts, body, mentions, everyone) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (room_id, seq, sender, sender_key, ts_ms, text, " ".join(names),
                                                           int(everyone)))
    conn.execute("UPDATE rooms SET last_seq = ? WHERE id = ?", (seq, room_id))
    conn.execute("UPDATE members SET read_seq = ? WHERE room_id = ? AND user_key = ?", (seq, room_id, sender_key))
    conn.execute("DELETE FROM mentions WHERE user_key = ? AND room_id = ? AND seq < ?", (sender_key, room_id, seq))
    if mentions:
        conn.executemany("INSERT OR IGNORE INTO mentions VALUES (?, ?, ?)",
                         [(key, room_id, seq) for key, _ in mentions if key != sender_key])
    return RoomMessage(room_id, seq, sender, ts_ms, text, names, everyone, int(row.lastrowid or 0))


def mark_read(conn: sqlite3.Connection, room_id: int, user_key: str, seq: int) -> int:
    """Move the user's read marker forward to ``seq`` (never back); returns the marker now."""
    conn.execute("UPDATE members SET read_seq = MAX(read_seq, ?) WHERE room_id = ? AND user_key = ?",
                 (seq, room_id, user_key))
    conn.execute("DELETE FROM mentions WHERE user_key = ? AND room_id = ? AND seq <= ?", (user_key, room_id, seq))
    row = conn.execute("SELECT read_seq FROM members WHERE room_id = ? AND user_key = ?", (room_id, user_key)).fetchone()
    return int(row[0]) if row else 0


def mark_private_read(conn: sqlite3.Connection, user_key: str, peer_key: str, peer: str, read_id: int) -> int:
    """Move the user's marker in the private conversation with ``peer`` forward; returns it."""
    conn.execute("INSERT INTO private_reads VALUES (?, ?, ?, ?) ON CONFLICT (user_key, peer_key) DO UPDATE SET "
                 "read_id = MAX(read_id, excluded.read_id), peer = excluded.peer", (user_key, peer_key, peer, read_id))
    return int(conn.execute("SELECT read_id FROM private_reads WHERE user_key = ? AND peer_key = ?",
                            (user_key, peer_key)).fetchone()[0])


def note_private_peer(conn: sqlite3.Connection, user_key: str, peer_key: str, peer: str, floor_id: int) -> None:
    """Start tracking the user's conversation with ``peer`` (everything up to ``floor_id`` read), once."""
    conn.execute("INSERT OR IGNORE INTO private_reads VALUES (?, ?, ?, ?)", (user_key, peer_key, peer, floor_id))


def delete_user(conn: sqlite3.Connection, user_key: str) -> int:
    """What a removed user leaves: their memberships, bans, invitations, mentions, read markers
    (theirs and others' of conversations with them) and messages. Returns how many messages went."""
    for statement in ("DELETE FROM members WHERE user_key = ?", "DELETE FROM bans WHERE user_key = ?",
                      "DELETE FROM invites WHERE user_key = ?", "DELETE FROM mentions WHERE user_key = ?",
                      "DELETE FROM private_reads WHERE user_key = ?", "DELETE FROM private_reads WHERE peer_key = ?"):
        conn.execute(statement, (user_key,))
    for table in ("mentions", "pins"):  # others' mentions by the removed user, and pins of their messages, go too
        conn.execute(f"DELETE FROM {table} WHERE (room_id, seq) IN (SELECT room_id, seq FROM messages WHERE sender_key = ?)",
                     (user_key,))
    conn.execute("DELETE FROM reactions WHERE user_key = ?", (user_key,))
    return conn.execute("DELETE FROM messages WHERE sender_key = ?", (user_key,)).rowcount


def check_quotas(conn: sqlite3.Connection, quotas: object, sender: str, to: str, ts_ms: int, text: str) -> None:
    """Nothing to do here: on SQLite chat's TEMP trigger checks the daily limits inside the INSERT."""


def mentionable(conn: sqlite3.Connection, room_id: int, names: Sequence[str], everyone: bool) -> list[tuple[str, str]]:
    """(user_key, display name) of the members ``names`` mention, in their order: every member for @room."""
    if everyone:
        return [(str(k), str(u)) for k, u in conn.execute("SELECT user_key, user FROM members WHERE room_id = ?",
                                                         (room_id,))]
    if not names:
        return []
    marks = ",".join("?" * len(names))
    found = dict(conn.execute(f"SELECT user_key, user FROM members WHERE room_id = ? AND user_key IN ({marks})",
                              (room_id, *names)).fetchall())
    return [(key, found[key]) for key in names if key in found]


def owned_rooms(conn: sqlite3.Connection, user_key: str) -> list[tuple[int, Optional[str]]]:
    """(room id, heir) of every room the user owns: the heir is the longest-standing moderator,
    else member (None: nobody else is left)."""
    heirs = []
    for (room_id,) in conn.execute("SELECT room_id FROM members WHERE user_key = ? AND role = 'owner'",
                                   (user_key,)).fetchall():
        heir = conn.execute("SELECT user_key FROM members WHERE room_id = ? AND user_key <> ? ORDER BY "
                            "role = 'moderator' DESC, joined_ts, user_key LIMIT 1", (room_id, user_key)).fetchone()
        heirs.append((int(room_id), str(heir[0]) if heir else None))
    return heirs


def pins_of_sender(conn: sqlite3.Connection, user_key: str) -> list[tuple[int, int]]:
    """(room id, seq) of the pinned messages the user sent."""
    return [(int(r), int(s)) for r, s in conn.execute(
        "SELECT p.room_id, p.seq FROM pins p JOIN messages m ON m.room_id = p.room_id AND m.seq = p.seq "
        "WHERE m.sender_key = ?", (user_key,))]


def reacted_by(conn: sqlite3.Connection, user_key: str) -> list[tuple[int, str]]:
    """(message id, room id as the change log's conv) of the messages the user reacted to."""
    return [(int(message_id), str(room_id)) for message_id, room_id in conn.execute(
        "SELECT DISTINCT r.message_id, m.room_id FROM reactions r JOIN messages m ON m.id = r.message_id"
        " WHERE r.user_key = ?", (user_key,))]


def changes_since(conn: sqlite3.Connection, readable: Sequence[tuple[str, int]], since: int, up_to: int,
                  cursor: int, limit: int) -> list[tuple[int, int, str, Optional[str]]]:
    """(message id, newest change id, kinds joined by ',', who deleted it) of the messages of the
    ``readable`` rooms ((room id, first seq visible after)) changed with ``since < id <= up_to``,
    newest change above ``cursor``, in change order, at most ``limit``."""
    values = ",".join("(?, ?)" for _ in readable)
    rows = conn.execute(
        f"WITH seen(conv, after_seq) AS (VALUES {values})"
        " SELECT c.message_id, MAX(c.id) AS last, group_concat(DISTINCT c.kind),"
        " (SELECT d.actor FROM message_changes d WHERE d.message_id = c.message_id AND d.kind = 'delete'"
        "  ORDER BY d.id DESC LIMIT 1)"
        " FROM message_changes c JOIN seen ON seen.conv = c.conv JOIN messages m ON m.id = c.message_id"
        " WHERE c.id > ? AND c.id <= ? AND m.seq > seen.after_seq"
        " GROUP BY c.message_id HAVING last > ? ORDER BY last LIMIT ?",
        [*(v for pair in readable for v in pair), since, up_to, cursor, limit]).fetchall()
    return [(int(m), int(last), str(kinds), None if by is None else str(by)) for m, last, kinds, by in rows]


def changed(conn: sqlite3.Connection, room_id: int) -> int:
    """Cluster mode counts room changes (``pgstore.changed``); one SQLite writer needs no count."""
    return 0


def changed_memberships(conn: sqlite3.Connection, user_key: str) -> None:
    """See ``changed``."""


def user_room_seqs(conn: sqlite3.Connection, user_key: str) -> dict[int, int]:
    """``last_seq`` of every room the user is a member of."""
    return {int(i): int(s) for i, s in conn.execute(
        "SELECT id, last_seq FROM rooms WHERE id IN (SELECT room_id FROM members WHERE user_key = ?)", (user_key,))}


# -- reads (any connection) ------------------------------------------------------------------

MESSAGE_COLUMNS = "room_id, seq, sender, ts, body, mentions, everyone, id, edited, deleted"


def _message(row: Sequence[object]) -> RoomMessage:
    room_id, seq, sender, ts, body, mentions, everyone, id_, edited, deleted = row
    return RoomMessage(int(room_id), int(seq), str(sender), int(ts), str(body),  # type: ignore[call-overload]
                       tuple(str(mentions).split()), bool(everyone), int(id_),  # type: ignore[call-overload]
                       None if edited is None else int(edited), bool(deleted))  # type: ignore[call-overload]


def page(conn: sqlite3.Connection, room_id: int, before: Optional[int], after: int, limit: int) -> list[RoomMessage]:
    """Up to ``limit`` messages of the room with ``after < seq < before``, newest first."""
    rows = conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages "
                        "WHERE room_id = ? AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                        (room_id, after, before if before is not None else 2**63 - 1, limit)).fetchall()
    return [_message(row) for row in rows]


@dataclass(frozen=True)
class Standing:
    """One user's standing in one room: role, read marker, mentions not yet read."""

    room_id: int
    role: str
    joined_seq: int
    read_seq: int
    mentions: int


def standings(conn: sqlite3.Connection, user_key: str, cap: int) -> list[Standing]:
    """The user's memberships with their read markers and unread mentions (each count capped)."""
    rows = conn.execute("SELECT room_id, role, joined_seq, read_seq FROM members WHERE user_key = ?", (user_key,)).fetchall()
    return [Standing(int(room_id), str(role_), int(joined), int(read), mention_count(conn, user_key, int(room_id), cap))
            for room_id, role_, joined, read in rows]


def standing(conn: sqlite3.Connection, room_id: int, user_key: str, cap: int) -> Optional[Standing]:
    row = conn.execute("SELECT role, joined_seq, read_seq FROM members WHERE room_id = ? AND user_key = ?",
                       (room_id, user_key)).fetchone()
    if row is None:
        return None
    return Standing(room_id, str(row[0]), int(row[1]), int(row[2]), mention_count(conn, user_key, room_id, cap))


def mention_count(conn: sqlite3.Connection, user_key: str, room_id: int, cap: int) -> int:
    """Mentions of the user in the room after their read marker (marking read deletes the older ones)."""
    return int(conn.execute("SELECT COUNT(*) FROM (SELECT 1 FROM mentions WHERE user_key = ? AND room_id = ? LIMIT ?)",
                            (user_key, room_id, cap)).fetchone()[0])


def private_reads(conn: sqlite3.Connection, user_key: str) -> list[tuple[str, str, int]]:
    """(peer_key, peer, read_id) of every private conversation tracked for the user."""
    return [(str(k), str(p), int(r)) for k, p, r in conn.execute(
        "SELECT peer_key, peer, read_id FROM private_reads WHERE user_key = ?", (user_key,))]


def private_pairs(conn: sqlite3.Connection) -> Iterable[tuple[str, str]]:
    """Every (user_key, peer_key) tracked (loaded once, so new pairs are noticed without a query)."""
    return [(str(u), str(p)) for u, p in conn.execute("SELECT user_key, peer_key FROM private_reads")]


def bans_of(conn: sqlite3.Connection, room_id: int) -> list[dict[str, object]]:
    return [{"user": user, "by": by, "reason": reason, "ts": protocol.timestamp(ts)} for user, by, reason, ts in
            conn.execute("SELECT user, by, reason, ts FROM bans WHERE room_id = ? ORDER BY user_key", (room_id,))]


def invitations(conn: sqlite3.Connection, user_key: str) -> list[tuple[int, str]]:
    """(room_id, by) of the user's pending invitations."""
    return [(int(r), str(b)) for r, b in conn.execute("SELECT room_id, by FROM invites WHERE user_key = ?", (user_key,))]
