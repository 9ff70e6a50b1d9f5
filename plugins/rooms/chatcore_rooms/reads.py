"""The ``rooms`` plugin's read commands: the room list (at login and on request), the
directory, member pages and history. They read pooled connections and the rooms in memory,
and answer at once; nothing here changes anything. ``RoomsService.reads``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from chatcore import CommandError, protocol
from chatcore_chat.delivery import send
from chatcore_rooms import listing
from chatcore_rooms.models import RANK
from chatcore_rooms.names import page_limit

if TYPE_CHECKING:
    from chatcore_rooms.service import RoomsService

MAX_ID = 2**63 - 1


class Reads:
    """``room_list``, ``room_directory``, ``room_members``, ``room_history`` of one service."""

    def __init__(self, service: "RoomsService") -> None:
        self.service = service

    def send_list(self, session: Any) -> None:
        """``room_list`` frames: the user's rooms with unread and mention counts, their private
        conversations with unread messages, their invitations."""
        assert self.service.readers is not None and self.service.chat is not None
        user = self.service._user(session)
        key = user.casefold()
        as_of = self.service.chat.newest_id()
        sql = self.service.sql
        with self.service.readers.connection() as conn:
            standings = sql.standings(conn, key, self.service.settings.unread_cap)
            tracked = sql.private_reads(conn, key)
            invitations = sql.invitations(conn, key)
            seqs = sql.user_room_seqs(conn, key)
        mine = []
        for standing in standings:
            room = self.service.by_id(standing.room_id)
            if room is not None:
                entry = self.service.mine(room, standing.role, standing.read_seq, standing.mentions)
                entry["last_seq"] = seqs.get(room.id, room.last_seq)
                entry["unread"] = max(0, entry["last_seq"] - standing.read_seq)
                mine.append(entry)
        mine.sort(key=lambda entry: str(entry["room"]).casefold())
        private = []
        for _, peer, read_id in sorted(tracked):
            unread = self.service.chat.unread(user, peer, read_id, as_of, self.service.settings.unread_cap)
            if unread:
                private.append({"peer": peer, "id": read_id, "unread": unread})
        invites = [{**self.service._ids[room_id].info(), "by": by} for room_id, by in invitations if room_id in self.service._ids]
        for body in listing.list_frames(mine, private, invites, as_of):
            send(session, protocol.encode(body))

    def room_list(self, session: Any, message: dict[str, Any]) -> None:
        self.send_list(session)

    def directory_page(self, session: Any, message: dict[str, Any]) -> dict[str, Any]:
        """``room_directory`` {after?, limit?}: public rooms by name, with member counts."""
        key = self.service._user(session).casefold()
        after = str(message.get("after", "")).casefold()
        limit = page_limit(message, 200)
        rooms = sorted((room for room in list(self.service.rooms.values()) if not room.private and room.key > after),
                       key=lambda room: room.key)
        entries = ({**room.info(), "joined": key in room.members, "key": room.key} for room in rooms[:limit + 1])
        reply = listing.page_reply("room_directory", "rooms", entries, "key", limit)
        for entry in reply["rooms"]:
            entry.pop("key")
        return reply

    def members_page(self, session: Any, message: dict[str, Any]) -> dict[str, Any]:
        """``room_members`` {room, after?}: members by name with role and presence; moderators
        also get the bans on the first page."""
        assert self.service.directory is not None and self.service.readers is not None
        key = self.service._user(session).casefold()
        room = self.service._room(message["room"])
        mine = self.service.role_of(room, key)
        if mine is None:
            raise CommandError("not_member", f"you are not a member of {room.name}")
        after = str(message.get("after", "")).casefold()
        members = sorted((m for m in list(room.members.values()) if m.user_key > after), key=lambda m: m.user_key)
        sessions = self.service.directory
        entries = ({"user": m.user, "role": m.role, "online": bool(sessions.of_user(m.user_key)), "key": m.user_key}
                   for m in members)
        extra: dict[str, Any] = {"room": room.name}
        if RANK[mine] >= RANK["moderator"] and not after:
            with self.service.readers.connection() as conn:
                extra["bans"] = self.service.sql.bans_of(conn, room.id)[:100]
        reply = listing.page_reply("room_members", "members", entries, "key", page_limit(message, 1000), extra)
        for entry in reply["members"]:
            entry.pop("key")
        return reply

    def history(self, session: Any, message: dict[str, Any]) -> dict[str, Any]:
        """``room_history`` {room, before?, limit?}: members only; a room whose history is
        ``joined`` shows each member only what came after they joined."""
        assert self.service.readers is not None
        key = self.service._user(session).casefold()
        room = self.service._room(message["room"])
        before: Optional[int] = message.get("before")
        if before is not None and before > MAX_ID:
            before = None
        limit = min(page_limit(message, self.service.settings.history_page), self.service.settings.history_page)
        sql = self.service.sql
        with self.service.readers.connection() as conn:
            changed = sql.newest(conn)  # read first: the page shows every change up to it
            standing = sql.standing(conn, room.id, key, 1)
            if standing is None:
                raise CommandError("not_member", f"you are not a member of {room.name}")
            floor = standing.joined_seq if room.history == "joined" else 0
            rows = [] if before is not None and before <= floor + 1 else sql.page(conn, room.id, before, floor, limit + 1)
            assert self.service.chat is not None
            reactions = sql.reactions(conn, [row.id for row in rows[:limit]],
                                           self.service.chat.actions.settings.reaction_names)
        return {**listing.history_reply(room.name, rows[:limit], len(rows) > limit, reactions=reactions),
                "last_change_id": changed}

