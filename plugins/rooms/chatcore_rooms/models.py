"""What the rooms plugin holds in memory and passes around: rooms, members, stored messages.

Plain data (no SQL, no sessions): ``store.py`` builds these from rows, the service keeps the
rooms and their members in memory for fan-out and cheap refusals, and ``Room.info`` and
``RoomMessage.item`` are their shapes on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from chatcore import protocol
from chatcore_chat.features import stamp_fields

ROLES = ("owner", "moderator", "member")  # highest first
RANK = {"owner": 3, "moderator": 2, "member": 1}
HISTORY_MODES = ("shared", "joined")  # shared: members see what came before they joined


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
    version: int = 0  # cluster mode: the database's count of this room's changes that memory reflects

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


@dataclass(slots=True)
class RoomMessage:
    """One stored room message; nothing changes one once made (not ``frozen``: its ``__init__``
    would cost three times as much, once per message)."""

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

