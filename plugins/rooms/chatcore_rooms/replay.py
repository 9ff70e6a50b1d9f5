"""Rooms' change replay after a reconnect: a v2 ``login`` naming ``room_changes_since`` (the newest
room ``change_id`` its client saw) is sent, after its room list, the room messages it may read
that were edited, deleted or reacted to since then, each once, in the order of its newest change
and as it is now, then ``room_changes_done`` {``complete``, ``last_change_id``}.

The log is chat's (``chatcore_chat.changelog``), kept in the rooms database by the rooms writer,
its ``conv`` the room's id: rooms have their own sequence of change ids. What a user may read is
decided now, by memberships: the rooms they are a member of, and in a ``joined`` room only what
came after they joined. Paging, pacing, the cap and what makes it incomplete are chat's
(``chatcore_chat.replay``).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from chatcore import protocol
from chatcore_chat import changelog
from chatcore_chat.changelog import Changed
from chatcore_chat.delivery import send
from chatcore_chat.replay import ChangesPage, Replay

if TYPE_CHECKING:
    from chatcore_rooms.service import RoomsService


class RoomChangesPage(ChangesPage):
    """A page of changed room messages; ``readable`` (room id -> first seq visible) is fixed by
    the service before the replay starts."""

    service: "RoomsService"

    def select(self, conn: sqlite3.Connection, user_key: str, up_to: int) -> list[Changed]:
        readable = [(str(room.id), member.joined_seq if room.history == "joined" else 0)
                    for room in list(self.service.rooms.values())
                    for member in (room.members.get(user_key),) if member is not None]
        if not readable:
            return []
        rows = self.service.sql.changes_since(conn, readable, self.since, up_to, self.cursor, self.limit + 1)
        return [Changed(message_id, last, frozenset(kinds.split(",")), by) for message_id, last, kinds, by in rows]

    def bodies(self, conn: sqlite3.Connection, changed: list[Changed]) -> dict[int, list[dict[str, Any]]]:
        ids = [c.message_id for c in changed]
        sql = self.service.sql
        found = {m.id: m for m in sql.by_ids(conn, ids)}
        totals = sql.reactions(conn, [c.message_id for c in changed if changelog.REACTIONS in c.kinds],
                                    self.names)
        out: dict[int, list[dict[str, Any]]] = {}
        for entry in changed:
            message = found.get(entry.message_id)
            room = self.service.by_id(message.room_id) if message is not None else None
            if message is None or room is None:
                continue
            head = {"room": room.name, "seq": message.seq, "sender": message.sender, "change_id": entry.change_id,
                    "replayed": True}
            if message.deleted:
                out[entry.message_id] = [{"type": "message_deleted", **head, "by": entry.deleted_by or ""}]
                continue
            events = []
            if changelog.EDIT in entry.kinds and message.edited_ms is not None:
                events.append({"type": "message_edited", **head, "message": message.text,
                               "edited": protocol.timestamp(message.edited_ms)})
            if changelog.REACTIONS in entry.kinds:
                events.append({"type": "message_reactions", **head, "reactions": totals.get(message.id, [])})
            out[entry.message_id] = events
        return out


class RoomReplay(Replay):
    """The rooms service's replay: its writer, its pages."""

    def __init__(self, service: "RoomsService") -> None:
        chat = service.chat
        assert chat is not None and chat.backlog is not None and service.writer is not None
        super().__init__(chat.backlog, chat.actions, service.writer.submit)
        self.service = service

    def deliver(self, session: Any, since: int) -> None:
        """Replay the changes since ``since`` to ``session``, then ``room_changes_done``."""
        outcome = self.run(session, since)
        if outcome is not None:
            send(session, protocol.encode({"type": "room_changes_done", "complete": outcome[0],
                                           "last_change_id": outcome[1]}))

    def page(self, *args: Any) -> RoomChangesPage:  # type: ignore[override]
        page = RoomChangesPage(*args)
        page.service = self.service
        if self.service.sql.cluster:
            page.sql = self.service.sql  # the change log's newest and pruned ids on PostgreSQL
        return page
