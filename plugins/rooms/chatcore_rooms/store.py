"""SQLite storage of rooms: schema, row models and the queries the plugin runs.

Data access only: no sessions, no pluggy. The connection, the WAL checkpointer and the
reader pool are the chat plugin's (``chatcore_chat.store``): one writer connection changes
the database, readers borrow pooled connections alongside it. Every room message is one
row keyed by (room, seq); ``rooms.last_seq`` is the room's sequence, advanced in the same
transaction as the insert, so a room's messages are numbered 1, 2, 3, ... without gaps.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from chatcore import protocol
from chatcore_chat.changelog import SCHEMA as CHANGE_LOG
from chatcore_chat.features import add_features, defer_indexing, run_script, stamp_fields

FILENAME = "rooms.sqlite3"
SCHEMA_VERSION = 3  # 2: edits, redactions, reactions, pins, search (chatcore_chat.features); 3: change log
ROLES = ("owner", "moderator", "member")  # highest first
RANK = {"owner": 3, "moderator": 2, "member": 1}
HISTORY_MODES = ("shared", "joined")  # shared: members see what came before they joined
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


@dataclass
class Room:
    """A room as the plugin keeps it in memory (loaded at start, changed after each commit)."""

    id: int
    key: str
    name: str
    topic: str
    private: bool
    history: str
    created_by: str
    last_seq: int
    members: dict[str, "Member"] = field(default_factory=dict)  # by user_key
    pins: list[int] = field(default_factory=list)  # seqs of pinned messages, in pin order

    def role_of(self, user_key: str) -> Optional[str]:
        member = self.members.get(user_key)
        return member.role if member else None

    def info(self) -> dict[str, object]:
        """The public description (directory entries, events)."""
        info: dict[str, object] = {"room": self.name, "topic": self.topic, "private": self.private,
                                   "history": self.history, "members": len(self.members), "last_seq": self.last_seq}
        if self.pins:
            info["pins"] = list(self.pins)
        return info


@dataclass
class Member:
    """One membership."""

    user_key: str
    user: str
    role: str
    joined_seq: int


@dataclass(frozen=True)
class RoomMessage:
    """One stored room message."""

    room_id: int
    seq: int
    sender: str
    ts_ms: int
    text: str
    mentions: tuple[str, ...]
    everyone: bool
    id: int = 0  # the row's id: reactions and the search index refer to it
    edited_ms: Optional[int] = None
    deleted: bool = False

    def item(self, reactions: Optional[dict[int, list[dict[str, object]]]] = None) -> dict[str, object]:
        """The message as ``room_message`` events and ``room_history`` pages carry it (without
        the room): ``edited`` or ``deleted``, and ``reactions`` when it has any."""
        body: dict[str, object] = {"seq": self.seq, "sender": self.sender, "ts": protocol.timestamp(self.ts_ms),
                                   "message": self.text, **stamp_fields(self.edited_ms, self.deleted)}
        if reactions and self.id in reactions:
            body["reactions"] = reactions[self.id]
        if self.mentions:
            body["mentions"] = list(self.mentions)
        if self.everyone:
            body["everyone"] = True
        return body


def create_schema(conn: sqlite3.Connection, fts: bool = True) -> None:
    """Create the tables if missing, bring schema 1 up to date in one transaction (``fts=False``:
    without the search index, for the benchmark); refuse a database written by a newer schema."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"rooms database schema {version} is newer than this plugin understands ({SCHEMA_VERSION})")
    if version == SCHEMA_VERSION:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts_insert'").fetchone():
            conn.execute("BEGIN IMMEDIATE")  # an index kept by per-insert triggers: bulk from now on
            defer_indexing(conn)
            conn.execute("COMMIT")
        return
    try:
        conn.executescript("BEGIN IMMEDIATE;" + SCHEMA)
        if version < 2:
            add_features(conn, fts)  # a schema-1 database: its messages are indexed here
            run_script(conn, PINS)
        else:
            defer_indexing(conn)
        run_script(conn, CHANGE_LOG)  # chat's change log, ``conv`` = the room's id (``replay.py``)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


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
    record a mention for each (user_key, display name) in ``mentions``."""
    seq = int(conn.execute("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
                           (room_id,)).fetchone()[0])
    sender_key = sender.casefold()
    names = tuple(name for _, name in mentions)
    row = conn.execute("INSERT INTO messages (room_id, seq, sender, sender_key, ts, body, mentions, everyone) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (room_id, seq, sender, sender_key, ts_ms, text, " ".join(names),
                                                           int(everyone)))
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
