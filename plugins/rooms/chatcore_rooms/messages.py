"""Writer operations for what members say and read: room messages (stored as the room's next
seq, acknowledged, fanned out), read markers (rooms and private conversations), tracking a new
private conversation, and forgetting a removed user. The base class and the membership and
moderation operations are in ``ops.py``.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Any, Optional

from chatcore import protocol
from chatcore_chat import changelog
from chatcore_chat.delivery import Window, send
from chatcore_chat.faults import Refused
from chatcore_chat.writer import Batch, Operation
from chatcore_rooms import store
from chatcore_rooms.models import RANK, Room, RoomMessage
from chatcore_rooms.ops import RoomOp

if TYPE_CHECKING:
    from chatcore_rooms.service import RoomsService

log = logging.getLogger(__name__)


class Post(RoomOp):
    """Store a message as the room's next seq, acknowledge it, send it to every member's sessions."""

    command = "room_message"

    def __init__(self, service: "RoomsService", origin: Any, room: Room, text: str, names: list[str],
                 everyone: bool, client_id: Any, window: Optional[Window]) -> None:
        super().__init__(service, origin, room, client_id)
        self.text, self.names, self.everyone, self.window = text, names, everyone, window
        self.message: Optional[RoomMessage] = None

    def run(self, conn: sqlite3.Connection) -> None:
        room = self.room
        assert room is not None
        mine = self.role_here(conn)
        if mine is None:
            raise Refused("not_member", f"you are not a member of {room.name}: join it first")
        if self.everyone and RANK[mine] < RANK["moderator"]:
            raise Refused("mention_forbidden", "only moderators and the owner may mention @room")
        mentions, stamp = self._mentions(conn, room), self.now()
        try:  # the insert is the first change; chat's daily quota aborts it (and nothing else)
            self.message = store.insert_message(conn, room.id, self.actor, stamp, self.text, mentions, self.everyone)
        except sqlite3.IntegrityError as exc:
            refusal = self.service.quotas.refusal(exc, room.name, stamp)
            if refusal is None:
                raise
            raise refusal from None

    def _mentions(self, conn: sqlite3.Connection, room: Room) -> list[tuple[str, str]]:
        """(user_key, display name) of the members mentioned: every member for @room."""
        if self.everyone:
            return [(str(k), str(u)) for k, u in conn.execute(
                "SELECT user_key, user FROM members WHERE room_id = ?", (room.id,))]
        if not self.names:
            return []
        marks = ",".join("?" * len(self.names))
        found = dict(conn.execute(f"SELECT user_key, user FROM members WHERE room_id = ? AND user_key IN ({marks})",
                                  (room.id, *self.names)).fetchall())
        return [(key, found[key]) for key in self.names if key in found]

    def after(self, batch: Batch) -> None:
        self._free()
        message, room = self.message, self.room
        assert message is not None and room is not None
        room.last_seq = max(room.last_seq, message.seq)
        ack: dict[str, Any] = {"type": "room_ack", "room": room.name, "seq": message.seq,
                               "ts": protocol.timestamp(message.ts_ms)}
        if self.client_id is not None:
            ack["client_id"] = self.client_id
        send(self.origin, protocol.encode(ack))
        try:
            body = {"type": "room_message", "room": room.name, **message.item()}
            self.service.fan_out(room, protocol.encode(body), (), skip=self.origin)
        except Exception:
            log.exception("delivering room message %s/%d failed", room.name, message.seq)

    def failed(self, error: BaseException) -> None:
        self._free()
        super().failed(error)

    def _free(self) -> None:
        if self.window is not None:
            self.window.release()
            self.window = None


class MarkRead(RoomOp):
    """Move the user's read marker in a room forward; their other sessions are told."""

    command = "mark_read"

    def __init__(self, service: "RoomsService", origin: Any, room: Room, seq: int) -> None:
        super().__init__(service, origin, room)
        self.seq = seq

    def run(self, conn: sqlite3.Connection) -> None:
        room = self.room
        assert room is not None
        row = store.room_row(conn, room.key)
        assert row is not None
        if self.role_here(conn) is None:
            raise Refused("not_member", f"you are not a member of {room.name}")
        last_seq = row[3]
        read = store.mark_read(conn, room.id, self.actor_key, min(self.seq, last_seq))
        marker = {"room": room.name, "seq": read, "unread": max(0, last_seq - read),
                  "mentions": store.mention_count(conn, self.actor_key, room.id, self.service.settings.unread_cap)}
        self.reply = {"type": "mark_read_result", **marker}
        self.changes.append(lambda: self.service.tell_user(self.actor_key, {"type": "read_marker", **marker},
                                                           skip=self.origin))


class MarkPrivateRead(RoomOp):
    """Move the user's read marker in a private conversation forward; their other sessions are told."""

    command = "mark_read"

    def __init__(self, service: "RoomsService", origin: Any, peer: str, read_id: int) -> None:
        super().__init__(service, origin)
        self.peer, self.read_id = peer, read_id
        self.marker: dict[str, Any] = {}

    def run(self, conn: sqlite3.Connection) -> None:
        read = store.mark_private_read(conn, self.actor_key, self.peer.casefold(), self.peer, self.read_id)
        self.marker = {"peer": self.peer, "id": read}

    def after(self, batch: Batch) -> None:
        unread, as_of = self.service.private_unread(self.actor, self.peer, self.marker["id"])
        marker = {**self.marker, "unread": unread, "as_of": as_of}
        send(self.origin, protocol.encode({"type": "mark_read_result", **marker}))
        self.service.tell_user(self.actor_key, {"type": "read_marker", **marker}, skip=self.origin)


class NotePeer(Operation):
    """Start tracking a private conversation for its recipient (the first message of a pair)."""

    def __init__(self, user_key: str, peer_key: str, peer: str, floor_id: int) -> None:
        super().__init__()
        self.user_key, self.peer_key, self.peer, self.floor_id = user_key, peer_key, peer, floor_id

    def apply(self, conn: sqlite3.Connection, batch: Batch) -> None:
        store.note_private_peer(conn, self.user_key, self.peer_key, self.peer, self.floor_id)


class Purge(Operation):
    """Forget a removed user (``store.delete_user``); their rooms pass to the longest-standing
    moderator, else member, and a room left empty is deleted. ``result``: messages deleted."""

    def __init__(self, service: "RoomsService", user_key: str) -> None:
        super().__init__()
        self.service, self.user_key = service, user_key
        self.handover: list[tuple[Room, Optional[str]]] = []
        self.unpinned: list[tuple[int, int]] = []

    def apply(self, conn: sqlite3.Connection, batch: Batch) -> None:
        self.handover = []
        for (room_id,) in conn.execute("SELECT room_id FROM members WHERE user_key = ? AND role = 'owner'",
                                       (self.user_key,)).fetchall():
            heir = conn.execute("SELECT user_key FROM members WHERE room_id = ? AND user_key <> ? ORDER BY "
                                "role = 'moderator' DESC, joined_ts, user_key LIMIT 1", (room_id, self.user_key)).fetchone()
            room = self.service.by_id(int(room_id))
            if heir is None:
                store.delete_room(conn, int(room_id))
            else:
                store.set_role(conn, int(room_id), str(heir[0]), "owner")
            if room is not None:
                self.handover.append((room, str(heir[0]) if heir else None))
        self.unpinned = conn.execute("SELECT p.room_id, p.seq FROM pins p JOIN messages m ON m.room_id = p.room_id "
                                     "AND m.seq = p.seq WHERE m.sender_key = ?", (self.user_key,)).fetchall()
        reacted = [(int(message_id), str(room_id)) for message_id, room_id in conn.execute(
            "SELECT DISTINCT r.message_id, m.room_id FROM reactions r JOIN messages m ON m.id = r.message_id"
            " WHERE r.user_key = ?", (self.user_key,))]  # their reactions go: those messages changed
        self.result = store.delete_user(conn, self.user_key)  # their messages' changes go with them
        changelog.record_many(conn, reacted, changelog.REACTIONS, "", self.service.stamp())

    def after(self, batch: Batch) -> None:
        for room_id, seq in self.unpinned:  # pins of the removed user's messages went with them
            room = self.service.by_id(int(room_id))
            if room is not None and seq in room.pins:
                room.pins.remove(seq)
        self.service.forget_member(self.user_key, self.handover)
