"""The message-feature commands of rooms (docs/protocol.md §7.1): ``room_message_edit``,
``room_message_delete``, ``room_react``, ``room_typing``, ``room_pin``, ``room_unpin``,
``room_pins``, and the rooms' part of chat's ``search`` (the ``chatcore_chat_search`` hook).

First checks against memory here (the room, the fields, the text through chat's rules and
filters); changes become writer operations (``changes.py``). Typing is never stored: chat's
throttle, one event to the members. ``RoomsService.features``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatcore import CommandError
from chatcore_chat import features, search
from chatcore_chat.search import Hit
from chatcore_rooms import changes
from chatcore_rooms.models import Room

if TYPE_CHECKING:
    from chatcore_rooms.service import RoomsService

SOURCE = "rooms"  # this plugin's search source: its cursor part is a room message's row id


class RoomFeatures:
    """Edit, delete, reactions, typing, pins and search for one rooms service."""

    def __init__(self, service: "RoomsService") -> None:
        self.service = service

    def _target(self, session: Any, message: dict[str, Any]) -> tuple[str, Room, int]:
        user = self.service._user(session)
        room = self.service._room(message["room"])
        seq = message["seq"]
        if isinstance(seq, bool) or seq < 1:
            raise CommandError("bad_request", "field 'seq' must be a message's seq")
        return user, room, int(seq)

    def edit(self, session: Any, message: dict[str, Any]) -> None:
        """``room_message_edit`` {room, seq, message}: one's own message gets the new text."""
        user, room, seq = self._target(session, message)
        chat = self.service.chat
        assert chat is not None
        text = message["message"]
        chat.check_text(text)
        draft: dict[str, Any] = {"sender": user, "to": "#" + room.name, "room": room.name, "message": text,
                                 "client_id": None, "edit": seq}
        chat.filter_message(session, draft)
        if draft.get("message") is not text:
            chat.check_text(draft.get("message"))
        self.service._submit(changes.Edit(self.service, session, room, seq, str(draft["message"])))

    def delete(self, session: Any, message: dict[str, Any]) -> None:
        """``room_message_delete`` {room, seq}: the sender, a moderator or owner, or an administrator."""
        _, room, seq = self._target(session, message)
        self.service._submit(changes.Redact(self.service, session, room, seq))

    def react(self, session: Any, message: dict[str, Any]) -> None:
        """``room_react`` {room, seq, emoji, remove?}."""
        _, room, seq = self._target(session, message)
        assert self.service.chat is not None
        emoji = features.check_emoji(message["emoji"], self.service.chat.actions.settings.reaction_max_length)
        self.service._submit(changes.React(self.service, session, room, seq, emoji, not message.get("remove", False)))

    def pin(self, session: Any, message: dict[str, Any]) -> None:
        _, room, seq = self._target(session, message)
        self.service._submit(changes.Pin(self.service, session, room, seq, True))

    def unpin(self, session: Any, message: dict[str, Any]) -> None:
        _, room, seq = self._target(session, message)
        self.service._submit(changes.Pin(self.service, session, room, seq, False))

    def pins(self, session: Any, message: dict[str, Any]) -> dict[str, Any]:
        """``room_pins`` {room}: the pinned messages (members only), in pin order."""
        key = self.service._user(session).casefold()
        room = self.service._room(message["room"])
        if self.service.role_of(room, key) is None:
            raise CommandError("not_member", f"you are not a member of {room.name}")
        assert self.service.readers is not None
        with self.service.readers.connection() as conn:
            found = self.service.sql.pinned(conn, room.id)
        return {"type": "room_pins", "room": room.name,
                "messages": [{**item.item(), "pinned_by": by} for item, by in found]}

    def typing(self, session: Any, message: dict[str, Any]) -> None:
        """``room_typing`` {room}: members only; throttled like chat's ``typing``; no reply."""
        user = self.service._user(session)
        room = self.service._room(message["room"])
        key = user.casefold()
        if self.service.role_of(room, key) is None:
            raise CommandError("not_member", f"you are not a member of {room.name}")
        chat = self.service.chat
        assert chat is not None
        if not chat.actions.typing_throttle.allow((key, "#" + room.key)):
            return
        body = {"type": "typing", "room": room.name, "sender": user, "expires_in": chat.actions.settings.typing_expiry}
        online = self.service.online_sessions
        chat.actions.tell((s for member in list(room.members) if member != key for s in online(member)), body)
        if self.service.fanout is not None:  # the members' sessions on other nodes (pub/sub: throw-away)
            self.service.fanout.typing(room, key, body)

    def search(self, user: str, words: list[str], match: str, before: dict[str, int], limit: int) -> list[Hit]:
        """The rooms' hits for chat's ``search``: rooms the user is a member of, as their history shows them."""
        readers, indexer, sql = self.service.readers, self.service.indexer, self.service.sql
        if readers is None or (indexer is None and not sql.cluster):
            return []
        if indexer is not None:
            indexer.flush()  # every room message acknowledged so far is in the index
        with readers.connection() as conn:  # SQLite's FTS5 takes the match, PostgreSQL's folded words the words
            found = sql.search(conn, user.casefold(), words if sql.cluster else match,
                               before.get(SOURCE, 2**63 - 1), limit)
        return [Hit(SOURCE, item.id, item.ts_ms, {"room": room, **item.item(), "marks": search.marks(item.text, words)})
                for room, item in found]
