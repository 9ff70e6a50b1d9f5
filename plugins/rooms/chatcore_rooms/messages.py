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
        self.arrivals: list[RoomMessage] = []  # cluster mode: what to deliver here, this one last

    def run(self, conn: sqlite3.Connection) -> None:
        room = self.room
        assert room is not None
        mine = self.role_here(conn)
        if mine is None:
            raise Refused("not_member", f"you are not a member of {room.name}: join it first")
        if self.everyone and RANK[mine] < RANK["moderator"]:
            raise Refused("mention_forbidden", "only moderators and the owner may mention @room")
        mentions, stamp = self.sql.mentionable(conn, room.id, self.names, self.everyone), self.now()
        self.sql.check_quotas(conn, self.service.quotas, self.actor, room.name, stamp, self.text)  # PostgreSQL's
        try:  # the insert is the first change; on SQLite chat's daily quota aborts it (and nothing else)
            self.message = self.sql.insert_message(conn, room.id, self.actor, stamp, self.text, mentions, self.everyone)
        except sqlite3.IntegrityError as exc:
            refusal = self.service.quotas.refusal(exc, room.name, stamp)
            if refusal is None:
                raise
            raise refusal from None
        fanout = self.service.fanout
        if fanout is not None:  # after the last statement that may fail: a gap before it is filled too
            self.arrivals = fanout.arrive(conn, self.batch, room, self.message.seq, self.message)

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
            fanout = self.service.fanout
            if fanout is not None:
                fanout.advanced(batch)
                fanout.publish(message)
                fanout.deliver(room, self.arrivals, self.origin, message.seq)
                return
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
        row = self.sql.room_row(conn, room.key)
        assert row is not None
        if self.role_here(conn) is None:
            raise Refused("not_member", f"you are not a member of {room.name}")
        last_seq = row[3]
        read = self.sql.mark_read(conn, room.id, self.actor_key, min(self.seq, last_seq))
        marker = {"room": room.name, "seq": read, "unread": max(0, last_seq - read),
                  "mentions": self.sql.mention_count(conn, self.actor_key, room.id, self.service.settings.unread_cap)}
        self.reply = {"type": "mark_read_result", **marker}
        self.user_events.append((self.actor_key, {"type": "read_marker", **marker}))


class MarkPrivateRead(RoomOp):
    """Move the user's read marker in a private conversation forward; their other sessions are told."""

    command = "mark_read"

    def __init__(self, service: "RoomsService", origin: Any, peer: str, read_id: int) -> None:
        super().__init__(service, origin)
        self.peer, self.read_id = peer, read_id
        self.marker: dict[str, Any] = {}

    def run(self, conn: sqlite3.Connection) -> None:
        read = self.sql.mark_private_read(conn, self.actor_key, self.peer.casefold(), self.peer, self.read_id)
        self.marker = {"peer": self.peer, "id": read}

    def after(self, batch: Batch) -> None:
        unread, as_of = self.service.private_unread(self.actor, self.peer, self.marker["id"])
        marker = {**self.marker, "unread": unread, "as_of": as_of}
        send(self.origin, protocol.encode({"type": "mark_read_result", **marker}))
        self.service.tell_user(self.actor_key, {"type": "read_marker", **marker}, skip=self.origin)
        self.service.share(users=[(self.actor_key, {"type": "read_marker", **marker})])


class NotePeer(Operation):
    """Start tracking a private conversation for its recipient (the first message of a pair)."""

    def __init__(self, user_key: str, peer_key: str, peer: str, floor_id: int, sql: Any) -> None:
        super().__init__()
        self.user_key, self.peer_key, self.peer, self.floor_id, self.sql = user_key, peer_key, peer, floor_id, sql

    def apply(self, conn: sqlite3.Connection, batch: Batch) -> None:
        self.sql.note_private_peer(conn, self.user_key, self.peer_key, self.peer, self.floor_id)


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
        sql = self.service.sql
        for room_id, heir in sql.owned_rooms(conn, self.user_key):
            room = self.service.by_id(room_id)
            if heir is None:
                sql.delete_room(conn, room_id)
            else:
                sql.set_role(conn, room_id, heir, "owner")
            if room is not None:
                self.handover.append((room, heir))
        self.unpinned = sql.pins_of_sender(conn, self.user_key)
        reacted = sql.reacted_by(conn, self.user_key)  # their reactions go: those messages changed
        sql.changed_memberships(conn, self.user_key)
        self.result = sql.delete_user(conn, self.user_key)  # their messages' changes go with them
        sql.record_many(conn, reacted, changelog.REACTIONS, "", self.service.stamp())

    def after(self, batch: Batch) -> None:
        for room_id, seq in self.unpinned:  # pins of the removed user's messages went with them
            room = self.service.by_id(int(room_id))
            if room is not None and seq in room.pins:
                room.pins.remove(seq)
        self.service.forget_member(self.user_key, self.handover)
