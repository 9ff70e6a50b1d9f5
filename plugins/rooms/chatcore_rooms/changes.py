"""Writer operations that change a stored room message: edit, redaction, reactions and pins.

Rules are checked in the writer's transaction against the database (``RoomOp``): edit only
one's own message; delete one's own, or any as a moderator or the owner of the room, or as a
server administrator; react as a member; pin as a moderator or the owner. After the commit
the requester gets its ``*_result`` and the members' other v2 sessions one event, in commit
order with the room's messages. Edits, redactions and reaction changes are logged in the same
transaction (chat's ``changelog`` table in the rooms database): their ``change_id`` is in the
event and the reply, and a client that was away is replayed them at its next login (``replay.py``).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Optional

from chatcore import protocol
from chatcore_chat import changelog
from chatcore_chat.faults import Refused
from chatcore_chat.writer import Batch
from chatcore_rooms.models import RANK, Room, RoomMessage
from chatcore_rooms.ops import RoomOp

if TYPE_CHECKING:
    from chatcore_rooms.service import RoomsService


class RoomChange(RoomOp):
    """A change to message ``seq`` of ``room``; subclasses implement ``change``."""

    kind = ""  # its kind in the change log (pins are not logged: ``room_pins`` lists them)

    def __init__(self, service: "RoomsService", origin: Any, room: Room, seq: int) -> None:
        super().__init__(service, origin, room)
        self.seq = seq
        self.event: Optional[dict[str, Any]] = None

    def run(self, conn: sqlite3.Connection) -> None:
        self.event = None
        room = self.room
        assert room is not None
        role = self.role_here(conn)
        if role is None and not getattr(self.origin, "admin", False):
            raise Refused("not_member", f"you are not a member of {room.name}")
        found = self.sql.message(conn, room.id, self.seq)
        if found is None or found.deleted:
            raise Refused("unknown_message", f"there is no message {self.seq} in {room.name}")
        self.change(conn, found, role)
        if self.event is not None and self.kind:  # something changed: log it, and say its change id
            chat = self.service.chat
            assert chat is not None
            change_id = self.sql.record(conn, found.id, str(room.id), self.kind, self.actor, self.now())
            self.event["change_id"] = change_id
            if self.reply is not None:
                self.reply["change_id"] = change_id
            chat.actions.prune_changes(conn, change_id)

    def change(self, conn: sqlite3.Connection, found: RoomMessage, role: Optional[str]) -> None:
        raise NotImplementedError

    def head(self, found: RoomMessage) -> dict[str, Any]:
        return {"room": self.room_name, "seq": found.seq, "sender": found.sender}

    def after(self, batch: Batch) -> None:
        if self.event is not None and self.room is not None:  # told after the room's own events, as they are
            self.events.append((self.room, self.event, ()))
        super().after(batch)


class Edit(RoomChange):
    command = "room_message_edit"
    kind = changelog.EDIT

    def __init__(self, service: "RoomsService", origin: Any, room: Room, seq: int, text: str) -> None:
        super().__init__(service, origin, room, seq)
        self.text = text

    def change(self, conn: sqlite3.Connection, found: RoomMessage, role: Optional[str]) -> None:
        if found.sender.casefold() != self.actor_key or role is None:
            raise Refused("forbidden", "you may edit only your own messages")
        now = self.now()
        chat = self.service.chat
        assert chat is not None
        if chat.actions.settings.edit_refusal(found.ts_ms, now):
            raise Refused("edit_window", f"a message may be edited for {chat.actions.settings.edit_window:g} s "
                          "after it was sent")
        self.sql.edit(conn, found.id, self.text, now)  # mentions stay: an edit notifies nobody again
        edited = protocol.timestamp(now)
        self.answer(room=self.room_name, seq=found.seq, edited=edited)
        self.event = {"type": "message_edited", **self.head(found), "message": self.text, "edited": edited}


class Redact(RoomChange):
    command = "room_message_delete"
    kind = changelog.DELETE

    def change(self, conn: sqlite3.Connection, found: RoomMessage, role: Optional[str]) -> None:
        own = found.sender.casefold() == self.actor_key and role is not None
        moderator = role is not None and RANK[role] >= RANK["moderator"]
        if not (own or moderator or getattr(self.origin, "admin", False)):
            raise Refused("forbidden", "only the sender, the room's moderators and server administrators "
                          "may delete a message")
        room = self.room
        assert room is not None
        if self.sql.redact(conn, found):
            self.changes.append(lambda: room.pins.remove(found.seq) if found.seq in room.pins else None)
            self.tell("unpinned", seq=found.seq)
        self.answer(room=self.room_name, seq=found.seq)
        self.event = {"type": "message_deleted", **self.head(found), "by": self.actor}

    def after(self, batch: Batch) -> None:
        super().after(batch)
        if self.service.scrubber is not None:
            self.service.scrubber.redacted()


class React(RoomChange):
    command = "room_react"
    kind = changelog.REACTIONS

    def __init__(self, service: "RoomsService", origin: Any, room: Room, seq: int, emoji: str, add: bool) -> None:
        super().__init__(service, origin, room, seq)
        self.emoji, self.add = emoji, add

    def change(self, conn: sqlite3.Connection, found: RoomMessage, role: Optional[str]) -> None:
        if role is None:
            raise Refused("not_member", f"you are not a member of {self.room_name}")
        chat = self.service.chat
        assert chat is not None
        settings = chat.actions.settings
        changed = self.sql.react(conn, found.id, self.emoji, self.actor, self.add, self.now(),
                                 settings.reactions_per_message)
        totals = self.sql.reactions(conn, [found.id], settings.reaction_names).get(found.id, [])
        self.answer(room=self.room_name, seq=found.seq, reactions=totals)
        if changed:
            self.event = {"type": "message_reactions", **self.head(found), "reactions": totals}


class Pin(RoomChange):
    """Pin or unpin a message: moderators and the owner; members see ``pinned``/``unpinned``."""

    command = "room_pin"

    def __init__(self, service: "RoomsService", origin: Any, room: Room, seq: int, pinning: bool) -> None:
        super().__init__(service, origin, room, seq)
        self.pinning = pinning
        if not pinning:
            self.command = "room_unpin"

    def change(self, conn: sqlite3.Connection, found: RoomMessage, role: Optional[str]) -> None:
        self.need_rank(conn, RANK["moderator"], "pin messages")
        room = self.room
        assert room is not None
        most = self.service.settings.max_pins
        if self.pinning:
            if self.sql.pin_count(conn, room.id) >= most and found.seq not in room.pins:
                raise Refused("too_many_pins", f"a room has at most {most} pinned messages: unpin one first")
            changed = self.sql.pin(conn, room.id, found.seq, self.actor, self.now())
        else:
            changed = self.sql.unpin(conn, room.id, found.seq)
        self.answer(room=room.name, seq=found.seq)
        if changed:
            seq = found.seq
            self.changes.append(lambda: room.pins.append(seq) if self.pinning else
                                room.pins.remove(seq) if seq in room.pins else None)
            self.tell("pinned" if self.pinning else "unpinned", seq=seq)
