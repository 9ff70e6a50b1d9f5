"""Handlers for the message features of ``chat`` and ``rooms``: edits, deletions, reactions,
typing, search results and pinned messages; and the commands the window sends for them.

A message is found by its conversation key and id: a chat message id for the global room and
private conversations, the seq for a room (``#name``). Chat's events and replies carry a
``change_id``: the newest one shown is the cursor a token reconnect names (``saw_change``), and
the changes replayed after it are these same events. Events change the shown line in place
(``View.line_changed``); nothing here touches Tk.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from chatcore_client.handlers import Context, Dispatcher
from chatcore_client.state import ROOM, Conversation, Line, is_room, room_key
from chatcore_client.typing import Typing

COMMANDS = ("message_edit", "message_delete", "message_react", "typing", "search", "room_message_edit",
            "room_message_delete", "room_react", "room_typing", "room_pin", "room_unpin", "room_pins")


def decorated(line: Line, item: dict[str, Any], me: Optional[str]) -> Line:
    """``line`` with what a history item says of edits, deletion and reactions."""
    return dataclasses.replace(line, edited=bool(item.get("edited")), deleted=bool(item.get("deleted")),
                               reactions=reactions_of(item.get("reactions"), me))


def reactions_of(value: Any, me: Optional[str]) -> tuple[tuple[str, int, bool], ...]:
    """(emoji, count, mine) from the server's aggregated ``reactions``."""
    mine = (me or "").casefold()
    found = []
    for entry in value if isinstance(value, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("emoji"), str):
            users = [str(u).casefold() for u in entry.get("users", [])]
            found.append((entry["emoji"], int(entry.get("count", 0)), mine in users))
    return tuple(found)


def saw_change(ctx: Context, change_id: Any, room: bool = False) -> None:
    """What is shown is in step with the server's changes up to ``change_id`` (an event, a reply,
    a history page, ``caught_up``): the next token login names the newest as ``changes_since``
    (``room``: a room message's, with the rooms' own sequence, ``room_changes_since``). While a
    replay is under way the cursor stays, so a drop before its end loses nothing."""
    state = ctx.state
    if not isinstance(change_id, int) or isinstance(change_id, bool):
        return
    if room and not state.room_replaying:
        state.newest_room_change_id = max(change_id, state.newest_room_change_id or 0)
    elif not room and not state.replaying:
        state.newest_change_id = max(change_id, state.newest_change_id or 0)


def refresh(ctx: Context, conversation: Conversation, line: Line) -> None:
    """A history page brought ``line`` again: redraw the shown one if it was edited, deleted or
    reacted to meanwhile (while disconnected, say)."""
    old = conversation.find(line.id) if isinstance(line.id, int) else None
    if old is None:
        return
    changed = dataclasses.replace(old, text=line.text, edited=line.edited, deleted=line.deleted,
                                  reactions=line.reactions)
    if changed != old:
        conversation.replace(changed)
        ctx.view.line_changed(conversation.key, changed)


class FeatureHandlers:
    """Keeps shown messages in step with edits, deletions and reactions; typing; search; pins."""

    def __init__(self, ctx: Context, typing: Optional[Typing] = None) -> None:
        self.ctx = ctx
        self.typing = typing or Typing()
        self.results: Callable[[dict[str, Any]], None] = lambda reply: None  # the search window
        self.pins_changed: Callable[[str], None] = lambda key: None  # the room header
        self.pins: dict[str, list[dict[str, Any]]] = {}  # room key -> pinned messages (room_pins)
        self._sent: dict[Any, str] = {}  # chat message id -> conversation key, for replies naming only the id
        self._texts: dict[tuple[str, Any], str] = {}  # (key, id) -> edited text, until the server took it

    def register(self, dispatcher: Dispatcher) -> None:
        for event, handler in {"message_edited": self.edited, "message_deleted": self.deleted,
                               "message_reactions": self.reacted, "typing": self.typing_event,
                               "search": self.searched, "room_pins": self.pinned,
                               "message_edit_result": self.edit_done, "room_message_edit_result": self.edit_done,
                               "message_delete_result": self.deleted, "room_message_delete_result": self.deleted,
                               "message_react_result": self.reacted, "room_react_result": self.reacted,
                               "room_pin_result": self.pin_done, "room_unpin_result": self.pin_done,
                               "room_changes_done": self.room_changes_done}.items():
            dispatcher.register(event, handler)
        for command in COMMANDS:
            dispatcher.register(f"error:{command}", self.refused)
        dispatcher.register("room_event", self.room_event)

    # -- where a message lives -------------------------------------------------------------------

    def _key(self, message: dict[str, Any]) -> tuple[str, Any]:
        """(conversation key, id) of the message an event or reply names: a room's by name and
        seq; a chat event's by sender and recipient; a chat reply's as this client sent it."""
        if isinstance(message.get("room"), str):
            return room_key(message["room"]), message.get("seq")
        line_id = message.get("id")
        if "sender" not in message:
            return self._sent.get(line_id, self.ctx.state.current), line_id
        me = (self.ctx.state.user or "").casefold()
        sender, to = str(message.get("sender", "")), str(message.get("to", ""))
        if to == "":
            return ROOM, line_id
        return (to if sender.casefold() == me else sender), line_id

    def _change(self, key: str, line_id: Any, **fields: Any) -> None:
        conversation = self.ctx.state.conversations.get(key)
        if conversation is None or not isinstance(line_id, int):
            return
        line = conversation.find(line_id)
        if line is None:
            return
        new = dataclasses.replace(line, **fields)
        conversation.replace(new)
        self.ctx.view.line_changed(key, new)

    # -- events and replies ----------------------------------------------------------------------

    def edited(self, message: dict[str, Any]) -> None:
        saw_change(self.ctx, message.get("change_id"), "room" in message)
        key, line_id = self._key(message)
        if "message" in message:
            self._change(key, line_id, text=str(message["message"]), edited=True)

    def edit_done(self, message: dict[str, Any]) -> None:
        """This client's edit was stored: show the text it sent."""
        saw_change(self.ctx, message.get("change_id"), "room" in message)
        key, line_id = self._key(message)
        text = self._texts.pop((key, line_id), None)
        if text is not None:
            self._change(key, line_id, text=text, edited=True)

    def deleted(self, message: dict[str, Any]) -> None:
        saw_change(self.ctx, message.get("change_id"), "room" in message)
        key, line_id = self._key(message)
        self._change(key, line_id, text="", deleted=True, reactions=())

    def reacted(self, message: dict[str, Any]) -> None:
        saw_change(self.ctx, message.get("change_id"), "room" in message)
        key, line_id = self._key(message)
        self._change(key, line_id, reactions=reactions_of(message.get("reactions"), self.ctx.state.user))

    def room_changes_done(self, message: dict[str, Any]) -> None:
        """The room changes since ``room_changes_since`` were replayed: the room cursor moves on.
        (Open rooms' newest pages are reloaded after every login anyway, complete or not.)"""
        self.ctx.state.room_replaying = False
        saw_change(self.ctx, message.get("last_change_id"), room=True)

    def typing_event(self, message: dict[str, Any]) -> None:
        key = room_key(message["room"]) if isinstance(message.get("room"), str) else self._chat_key(message)
        self.typing.seen(key, str(message.get("sender", "")), float(message.get("expires_in") or 0))
        self.ctx.view.typing_changed(key)

    def _chat_key(self, message: dict[str, Any]) -> str:
        to = str(message.get("to", ""))
        return ROOM if to == "" else str(message.get("sender", ""))

    def searched(self, message: dict[str, Any]) -> None:
        self.results(message)

    def pinned(self, message: dict[str, Any]) -> None:
        key = room_key(str(message.get("room", "")))
        self.pins[key] = [m for m in message.get("messages", []) if isinstance(m, dict)]
        self.pins_changed(key)

    def pin_done(self, message: dict[str, Any]) -> None:
        self.ask_pins(room_key(str(message.get("room", ""))))

    def room_event(self, message: dict[str, Any]) -> None:
        if message.get("kind") in ("pinned", "unpinned"):
            self.ask_pins(room_key(str(message.get("room", ""))))

    def refused(self, message: dict[str, Any]) -> None:
        self.ctx.notice(self.ctx.state.current, f"Not done: {message.get('reason') or message.get('code')}")

    # -- what the user does ----------------------------------------------------------------------

    def _target(self, key: str, line_id: int) -> dict[str, Any]:
        if is_room(key):
            return {"room": key[1:], "seq": line_id}
        self._sent[line_id] = key
        return {"peer": key, "id": line_id}

    def edit(self, key: str, line_id: int, text: str) -> None:
        command = "room_message_edit" if is_room(key) else "message_edit"
        self._texts[(key, line_id)] = text  # shown once the server took it (the reply has no text)
        self.ctx.send({"command": command, **self._target(key, line_id), "message": text})

    def delete(self, key: str, line_id: int) -> None:
        self.ctx.send({"command": "room_message_delete" if is_room(key) else "message_delete",
                       **self._target(key, line_id)})

    def react(self, key: str, line_id: int, emoji: str) -> None:
        """Add ``emoji``, or take it back if this user already reacted with it."""
        line = self.ctx.state.conversation(key).find(line_id)
        mine = line is not None and any(e == emoji and me for e, _, me in line.reactions)
        command: dict[str, Any] = {"command": "room_react" if is_room(key) else "message_react",
                                   **self._target(key, line_id), "emoji": emoji}
        if mine:
            command["remove"] = True
        self.ctx.send(command)

    def pin(self, key: str, line_id: int, pinning: bool = True) -> None:
        self.ctx.send({"command": "room_pin" if pinning else "room_unpin", "room": key[1:], "seq": line_id})

    def ask_pins(self, key: str) -> None:
        if is_room(key):
            self.ctx.send({"command": "room_pins", "room": key[1:]})

    def typed(self, key: str) -> None:
        """A key press in the compose box: tell the server, at most every few seconds."""
        if self.typing.should_send(key):
            self.ctx.send({"command": "room_typing", "room": key[1:]} if is_room(key) else
                          {"command": "typing", "peer": key})

    def search(self, query: str, before: Optional[str] = None) -> None:
        command: dict[str, Any] = {"command": "search", "query": query}
        if before:
            command["before"] = before
        self.ctx.send(command)

    def last_own(self, key: str) -> Optional[Line]:
        """This user's newest message in ``key`` that may still be edited (Up in an empty box)."""
        conversation = self.ctx.state.conversations.get(key)
        if conversation is None:
            return None
        return next((line for line in reversed(conversation.lines)
                     if line.own and not line.notice and not line.deleted and isinstance(line.id, int)), None)
