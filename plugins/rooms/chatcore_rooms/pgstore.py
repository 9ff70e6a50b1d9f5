"""PostgreSQL storage of the rooms plugin (cluster mode): the queries that ``store.py`` and
``extras.py`` run on SQLite, with the same names and results (the schema: ``pgschema.py``).

The writer is chat's (``chatcore_chat.storage.ClusterStorage`` on this schema): every writing
transaction of every node first takes the rooms' advisory lock (``pgschema.WRITE_LOCK``), so rooms
commit one node's batch at a time, as SQLite's one writer does on a single node: a room's
``seq`` (``rooms.last_seq + 1``) is gapless and handed out in commit order, the rules (seats,
rooms per user, pins, the daily quota) are checked against rows nobody else is changing, and
change ids (``change_state``) are gapless. The features' queries that fit rooms' tables as
they are (reactions, the change log) are chat's (``chatcore_chat.pgfeatures``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from chatcore import protocol
from chatcore_chat.pgfeatures import record
from chatcore_chat.pgstore import check_quotas as _chat_quotas
from chatcore_chat.pgstore import folded_words
from chatcore_chat.quotas import Quotas
from chatcore_rooms.models import Member, Room, RoomMessage
from chatcore_rooms.store import MESSAGE_COLUMNS, Standing, _message

# -- memory: rooms and their members ------------------------------------------------------------

def load(conn: Any, room_ids: Optional[Sequence[int]] = None, key: Optional[str] = None) -> dict[str, Room]:
    """Rooms with their members and pins, by key: every room, or those named by id or key."""
    where, params = "", {}  # type: tuple[str, dict[str, Any]]
    if room_ids is not None:
        where, params = "WHERE id = ANY(%(ids)s)", {"ids": list(room_ids)}
    elif key is not None:
        where, params = "WHERE key = %(key)s", {"key": key}
    rooms: dict[int, Room] = {}
    for id_, key_, name, topic, private, history, created_by, last_seq, version in conn.execute(
            f"SELECT id, key, name, topic, private, history, created_by, last_seq, version FROM rooms {where}", params):
        rooms[int(id_)] = Room(int(id_), key_, name, topic, bool(private), history, created_by, int(last_seq),
                               version=int(version))
    if rooms:
        ids = list(rooms)
        for room_id, user_key, user, role_, joined_seq in conn.execute(
                'SELECT room_id, user_key, "user", role, joined_seq FROM members WHERE room_id = ANY(%s)', (ids,)):
            rooms[int(room_id)].members[user_key] = Member(user_key, user, role_, int(joined_seq))
        for room_id, seq in conn.execute("SELECT room_id, seq FROM pins WHERE room_id = ANY(%s) ORDER BY ts, seq",
                                         (ids,)):
            rooms[int(room_id)].pins.append(int(seq))
    return {room.key: room for room in rooms.values()}


def changed(conn: Any, room_id: int) -> int:
    """Count one more change of the room (in the changing transaction); returns its version now."""
    row = conn.execute("UPDATE rooms SET version = version + 1 WHERE id = %s RETURNING version", (room_id,)).fetchone()
    return int(row[0]) if row else 0


def changed_memberships(conn: Any, user_key: str) -> None:
    """Count a change of every room the user is a member of (an account removed)."""
    conn.execute("UPDATE rooms SET version = version + 1 WHERE id IN (SELECT room_id FROM members WHERE user_key = %s)",
                 (user_key,))


def version(conn: Any, room_id: int) -> Optional[int]:
    row = conn.execute("SELECT version FROM rooms WHERE id = %s", (room_id,)).fetchone()
    return int(row[0]) if row else None


def room_seqs(conn: Any, room_ids: Sequence[int]) -> dict[int, int]:
    """Each room's ``last_seq`` (rooms deleted are absent)."""
    rows = conn.execute("SELECT id, last_seq FROM rooms WHERE id = ANY(%s)", (list(room_ids),)).fetchall()
    return {int(id_): int(seq) for id_, seq in rows}


def user_room_seqs(conn: Any, user_key: str) -> dict[int, int]:
    """``last_seq`` of every room the user is a member of."""
    rows = conn.execute("SELECT id, last_seq FROM rooms WHERE id IN (SELECT room_id FROM members WHERE user_key = %s)",
                        (user_key,)).fetchall()
    return {int(id_): int(seq) for id_, seq in rows}


# -- writes (the writer's connection, inside its transaction) ------------------------------------

def insert_room(conn: Any, key: str, name: str, topic: str, private: bool, history: str, creator: str,
                ts_ms: int) -> int:
    return int(conn.execute("INSERT INTO rooms (key, name, topic, private, history, created_by, created_ts) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                            (key, name, topic, private, history, creator, ts_ms)).fetchone()[0])


def room_row(conn: Any, key: str) -> Optional[tuple[int, str, bool, int]]:
    row = conn.execute("SELECT id, name, private, last_seq FROM rooms WHERE key = %s", (key,)).fetchone()
    return (int(row[0]), str(row[1]), bool(row[2]), int(row[3])) if row else None


def room_count(conn: Any) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM rooms").fetchone()[0])


def role(conn: Any, room_id: int, user_key: str) -> Optional[str]:
    row = conn.execute("SELECT role FROM members WHERE room_id = %s AND user_key = %s", (room_id, user_key)).fetchone()
    return str(row[0]) if row else None


def member_count(conn: Any, room_id: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM members WHERE room_id = %s", (room_id,)).fetchone()[0])


def memberships(conn: Any, user_key: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM members WHERE user_key = %s", (user_key,)).fetchone()[0])


def add_member(conn: Any, room_id: int, user_key: str, user: str, role_: str, seq: int, ts_ms: int) -> None:
    conn.execute("INSERT INTO members VALUES (%s, %s, %s, %s, %s, %s, %s)", (room_id, user_key, user, role_, seq, ts_ms, seq))
    conn.execute("DELETE FROM invites WHERE room_id = %s AND user_key = %s", (room_id, user_key))


def remove_member(conn: Any, room_id: int, user_key: str) -> None:
    conn.execute("DELETE FROM members WHERE room_id = %s AND user_key = %s", (room_id, user_key))
    conn.execute("DELETE FROM mentions WHERE user_key = %s AND room_id = %s", (user_key, room_id))


def set_role(conn: Any, room_id: int, user_key: str, role_: str) -> None:
    conn.execute("UPDATE members SET role = %s WHERE room_id = %s AND user_key = %s", (role_, room_id, user_key))


def ban(conn: Any, room_id: int, user_key: str, user: str, by: str, reason: str, ts_ms: int) -> None:
    conn.execute('INSERT INTO bans VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (room_id, user_key) DO UPDATE SET '
                 '"by" = excluded."by", reason = excluded.reason, ts = excluded.ts',
                 (room_id, user_key, user, by, reason, ts_ms))
    conn.execute("DELETE FROM invites WHERE room_id = %s AND user_key = %s", (room_id, user_key))


def unban(conn: Any, room_id: int, user_key: str) -> bool:
    return bool(conn.execute("DELETE FROM bans WHERE room_id = %s AND user_key = %s", (room_id, user_key)).rowcount)


def ban_reason(conn: Any, room_id: int, user_key: str) -> Optional[str]:
    row = conn.execute("SELECT reason FROM bans WHERE room_id = %s AND user_key = %s", (room_id, user_key)).fetchone()
    return str(row[0]) if row else None


def invite(conn: Any, room_id: int, user_key: str, by: str, ts_ms: int) -> None:
    conn.execute('INSERT INTO invites VALUES (%s, %s, %s, %s) ON CONFLICT (room_id, user_key) DO UPDATE SET '
                 '"by" = excluded."by", ts = excluded.ts', (room_id, user_key, by, ts_ms))


def invited(conn: Any, room_id: int, user_key: str) -> bool:
    return conn.execute("SELECT 1 FROM invites WHERE room_id = %s AND user_key = %s",
                        (room_id, user_key)).fetchone() is not None


def set_topic(conn: Any, room_id: int, topic: str) -> None:
    conn.execute("UPDATE rooms SET topic = %s WHERE id = %s", (topic, room_id))


def delete_room(conn: Any, room_id: int) -> None:
    conn.execute("DELETE FROM rooms WHERE id = %s", (room_id,))


def check_quotas(conn: Any, quotas: Quotas, sender: str, to: str, ts_ms: int, text: str) -> None:
    """Chat's daily limits per sender (``Refused``: ``daily_quota``), against this schema's counts."""
    _chat_quotas(conn, quotas, sender, to, ts_ms, text, None)


def insert_message(conn: Any, room_id: int, sender: str, ts_ms: int, text: str,
                   mentions: Sequence[tuple[str, str]], everyone: bool) -> RoomMessage:
    """``store.insert_message``: the room's next seq (its row locked until the commit), a ``ts``
    never below the room's newest message's (the nodes' clocks may differ a little)."""
    seq = int(conn.execute("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq",
                           (room_id,)).fetchone()[0])
    sender_key = sender.casefold()
    names = tuple(name for _, name in mentions)
    id_, ts = conn.execute(
        "INSERT INTO messages (room_id, seq, sender, sender_key, ts, body, mentions, everyone, words) "
        "VALUES (%s, %s, %s, %s, GREATEST(%s, COALESCE((SELECT ts FROM messages WHERE room_id = %s "
        "ORDER BY seq DESC LIMIT 1), 0)), %s, %s, %s, %s) RETURNING id, ts",
        (room_id, seq, sender, sender_key, ts_ms, room_id, text, " ".join(names), everyone,
         folded_words(text))).fetchone()
    conn.execute("UPDATE members SET read_seq = %s WHERE room_id = %s AND user_key = %s", (seq, room_id, sender_key))
    conn.execute("DELETE FROM mentions WHERE user_key = %s AND room_id = %s AND seq < %s", (sender_key, room_id, seq))
    if mentions:
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO mentions VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                               [(key, room_id, seq) for key, _ in mentions if key != sender_key])
    return RoomMessage(room_id, seq, sender, int(ts), text, names, everyone, int(id_))


def mentionable(conn: Any, room_id: int, names: Sequence[str], everyone: bool) -> list[tuple[str, str]]:
    """``store.mentionable``."""
    if everyone:
        return [(str(k), str(u)) for k, u in conn.execute('SELECT user_key, "user" FROM members WHERE room_id = %s',
                                                         (room_id,))]
    if not names:
        return []
    found = dict(conn.execute('SELECT user_key, "user" FROM members WHERE room_id = %s AND user_key = ANY(%s)',
                              (room_id, list(names))).fetchall())
    return [(key, found[key]) for key in names if key in found]


def mark_read(conn: Any, room_id: int, user_key: str, seq: int) -> int:
    conn.execute("UPDATE members SET read_seq = GREATEST(read_seq, %s) WHERE room_id = %s AND user_key = %s",
                 (seq, room_id, user_key))
    conn.execute("DELETE FROM mentions WHERE user_key = %s AND room_id = %s AND seq <= %s", (user_key, room_id, seq))
    row = conn.execute("SELECT read_seq FROM members WHERE room_id = %s AND user_key = %s", (room_id, user_key)).fetchone()
    return int(row[0]) if row else 0


def mark_private_read(conn: Any, user_key: str, peer_key: str, peer: str, read_id: int) -> int:
    return int(conn.execute(
        "INSERT INTO private_reads VALUES (%s, %s, %s, %s) ON CONFLICT (user_key, peer_key) DO UPDATE SET "
        "read_id = GREATEST(private_reads.read_id, excluded.read_id), peer = excluded.peer RETURNING read_id",
        (user_key, peer_key, peer, read_id)).fetchone()[0])


def note_private_peer(conn: Any, user_key: str, peer_key: str, peer: str, floor_id: int) -> None:
    conn.execute("INSERT INTO private_reads VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                 (user_key, peer_key, peer, floor_id))


def owned_rooms(conn: Any, user_key: str) -> list[tuple[int, Optional[str]]]:
    """``store.owned_rooms``."""
    owned = [int(row[0]) for row in conn.execute(
        "SELECT room_id FROM members WHERE user_key = %s AND role = 'owner'", (user_key,)).fetchall()]
    heirs = []
    for room_id in owned:
        heir = conn.execute("SELECT user_key FROM members WHERE room_id = %s AND user_key <> %s ORDER BY "
                            "role = 'moderator' DESC, joined_ts, user_key LIMIT 1", (room_id, user_key)).fetchone()
        heirs.append((room_id, str(heir[0]) if heir else None))
    return heirs


def pins_of_sender(conn: Any, user_key: str) -> list[tuple[int, int]]:
    return [(int(r), int(s)) for r, s in conn.execute(
        "SELECT p.room_id, p.seq FROM pins p JOIN messages m ON m.room_id = p.room_id AND m.seq = p.seq "
        "WHERE m.sender_key = %s", (user_key,))]


def reacted_by(conn: Any, user_key: str) -> list[tuple[int, str]]:
    return [(int(message_id), str(room_id)) for message_id, room_id in conn.execute(
        "SELECT DISTINCT r.message_id, m.room_id FROM reactions r JOIN messages m ON m.id = r.message_id"
        " WHERE r.user_key = %s", (user_key,))]


def record_many(conn: Any, changed: Sequence[tuple[int, str]], kind: str, actor: str, ts_ms: int) -> None:
    for message_id, conv in changed:
        if conn.execute("SELECT 1 FROM messages WHERE id = %s", (message_id,)).fetchone():
            record(conn, message_id, conv, kind, actor, ts_ms)


def delete_user(conn: Any, user_key: str) -> int:
    """``store.delete_user``."""
    for table in ("members", "bans", "invites", "mentions", "private_reads"):
        conn.execute(f"DELETE FROM {table} WHERE user_key = %s", (user_key,))
    conn.execute("DELETE FROM private_reads WHERE peer_key = %s", (user_key,))
    for table in ("mentions", "pins"):
        conn.execute(f"DELETE FROM {table} WHERE (room_id, seq) IN (SELECT room_id, seq FROM messages "
                     "WHERE sender_key = %s)", (user_key,))
    conn.execute("DELETE FROM reactions WHERE user_key = %s", (user_key,))
    return int(conn.execute("DELETE FROM messages WHERE sender_key = %s", (user_key,)).rowcount)


def between(conn: Any, room_id: int, after_seq: int, up_to: int) -> list[RoomMessage]:
    """The room's messages with ``after_seq < seq <= up_to``, in seq order (a gap a node fills)."""
    rows = conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = %s AND seq > %s AND seq <= %s "
                        "ORDER BY seq", (room_id, after_seq, up_to)).fetchall()
    return [_message(row) for row in rows]


# -- reads ---------------------------------------------------------------------------------------

def page(conn: Any, room_id: int, before: Optional[int], after: int, limit: int) -> list[RoomMessage]:
    rows = conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = %s AND seq > %s AND seq < %s "
                        "ORDER BY seq DESC LIMIT %s",
                        (room_id, after, before if before is not None else 2**63 - 1, limit)).fetchall()
    return [_message(row) for row in rows]


def standings(conn: Any, user_key: str, cap: int) -> list[Standing]:
    rows = conn.execute("SELECT room_id, role, joined_seq, read_seq FROM members WHERE user_key = %s",
                        (user_key,)).fetchall()
    return [Standing(int(room_id), str(role_), int(joined), int(read), mention_count(conn, user_key, int(room_id), cap))
            for room_id, role_, joined, read in rows]


def standing(conn: Any, room_id: int, user_key: str, cap: int) -> Optional[Standing]:
    row = conn.execute("SELECT role, joined_seq, read_seq FROM members WHERE room_id = %s AND user_key = %s",
                       (room_id, user_key)).fetchone()
    if row is None:
        return None
    return Standing(room_id, str(row[0]), int(row[1]), int(row[2]), mention_count(conn, user_key, room_id, cap))


def mention_count(conn: Any, user_key: str, room_id: int, cap: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM (SELECT 1 FROM mentions WHERE user_key = %s AND room_id = %s "
                            "LIMIT %s) AS counted", (user_key, room_id, cap)).fetchone()[0])


def private_reads(conn: Any, user_key: str) -> list[tuple[str, str, int]]:
    return [(str(k), str(p), int(r)) for k, p, r in conn.execute(
        "SELECT peer_key, peer, read_id FROM private_reads WHERE user_key = %s", (user_key,))]


def private_pairs(conn: Any) -> list[tuple[str, str]]:
    return [(str(u), str(p)) for u, p in conn.execute("SELECT user_key, peer_key FROM private_reads")]


def bans_of(conn: Any, room_id: int) -> list[dict[str, object]]:
    return [{"user": user, "by": by, "reason": reason, "ts": protocol.timestamp(ts)} for user, by, reason, ts in
            conn.execute('SELECT "user", "by", reason, ts FROM bans WHERE room_id = %s ORDER BY user_key', (room_id,))]


def invitations(conn: Any, user_key: str) -> list[tuple[int, str]]:
    return [(int(r), str(b)) for r, b in conn.execute('SELECT room_id, "by" FROM invites WHERE user_key = %s',
                                                      (user_key,))]


def is_empty(conn: Any) -> bool:
    """Whether the schema holds no room and no message (``chat_import_sqlite`` checks)."""
    return bool(conn.execute("SELECT NOT EXISTS (SELECT 1 FROM rooms) AND NOT EXISTS (SELECT 1 FROM messages)"
                             ).fetchone()[0])
