"""Handlers for the ``rooms`` plugin: the room list with unread and mention badges, room
messages and history, membership events, read markers synced with the user's other devices.

A room is the conversation ``#<name>`` (``state.room_key``). Its message ids are its ``seq``
numbers, so history paging (``before``) and de-duplication work as for chat's conversations.
Badges: the login ``room_list`` gives absolute counts (rooms up to their ``last_seq``, private
conversations up to chat's id ``as_of``); what arrives later adds to them; a ``read_marker``
from another device sets them again.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Optional

from chatcore_client.handlers import Context, Dispatcher
from chatcore_client.handlers.features import decorated, refresh, saw_change
from chatcore_client.state import Conversation, Line, is_room, room_key

PAGE = 50  # messages per history request
CHANGES = ("room_create", "room_join", "room_leave", "room_invite", "room_kick", "room_ban", "room_unban",
           "room_set_role", "room_topic", "room_delete", "mark_read")
VERBS = {"joined": "joined", "left": "left", "kicked": "was removed", "banned": "was banned",
         "unbanned": "may join again", "invited": "was invited", "topic": "set the topic", "role": "is now"}


class RoomHandlers:
    """Rooms in the sidebar, their messages and events; the commands the windows ask for."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._ids = itertools.count(1)
        self._texts: dict[str, tuple[str, str]] = {}  # client_id -> (conversation key, text) until room_ack
        self.mentioned: Callable[[str, Line], None] = lambda key, line: None  # the app rings the bell
        self.focused: Callable[[], bool] = lambda: True  # whether the main window has the focus
        self.directory_listed: Callable[[list[dict[str, Any]]], None] = lambda rooms: None
        self.members_listed: Callable[[str, dict[str, Any]], None] = lambda key, reply: None
        self.changed: Callable[[str], None] = lambda key: None  # a room's members, roles or topic changed
        self.invites: dict[str, dict[str, Any]] = {}  # room name -> its info and who invited this user

    def register(self, dispatcher: Dispatcher) -> None:
        """Claim this module's event types."""
        handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "room_list": self.room_list, "room_message": self.message, "room_ack": self.ack,
            "room_history": self.history, "room_event": self.event, "read_marker": self.read_marker,
            "mark_read_result": self.read_marker, "room_directory": self.directory,
            "room_members": self.members, "error:room_message": self.message_error,
            "room_create_result": self.joined, "room_join_result": self.joined,
        }
        for command in CHANGES:
            if f"{command}_result" not in handlers:  # the other devices get a room_event instead
                handlers[f"{command}_result"] = self.changed_here
            handlers[f"error:{command}"] = self.refused
        handlers["error:room_history"] = self.refused
        handlers["error:room_members"] = self.refused
        for event, handler in handlers.items():
            dispatcher.register(event, handler)

    @property
    def available(self) -> bool:
        return self.ctx.state.server.offers("room_message")

    # -- user actions -------------------------------------------------------------------------

    def open(self, key: str) -> None:
        """Make the room current: clear its badges here and on the user's other devices, load history once."""
        state = self.ctx.state
        conversation = state.conversation(key)
        state.current = conversation.key
        if not conversation.loaded:
            conversation.loaded = True
            self._request(conversation, None)
        self.mark_read(conversation)
        self.ctx.view.conversations_changed()

    def mark_read(self, conversation: Conversation) -> None:
        """Everything shown is read: tell the server (it tells the other devices) if a badge was up."""
        had = conversation.unread or conversation.mentions
        conversation.unread = conversation.mentions = 0
        if had and conversation.last_seq:
            self.ctx.send({"command": "mark_read", "room": name_of(conversation), "seq": conversation.last_seq})

    def load_older(self, key: str) -> bool:
        conversation = self.ctx.state.conversation(key)
        if conversation.loading or not conversation.has_more or conversation.oldest_id is None:
            return False
        self._request(conversation, conversation.oldest_id)
        return True

    def _request(self, conversation: Conversation, before: Optional[int]) -> None:
        conversation.loading = True
        command: dict[str, Any] = {"command": "room_history", "room": name_of(conversation), "limit": PAGE}
        if before is not None:
            command["before"] = before
        self.ctx.send(command)

    def send_text(self, key: str, text: str) -> bool:
        text = text.strip()
        if not text:
            return False
        client_id = f"room-{next(self._ids)}"
        self._texts[client_id] = (key, text)
        self.ctx.send({"command": "room_message", "room": key[1:], "message": text, "client_id": client_id})
        return True

    def create(self, name: str, topic: str, private: bool) -> None:
        self.ctx.send({"command": "room_create", "room": name, "topic": topic, "private": private})

    def join(self, name: str) -> None:
        self.ctx.send({"command": "room_join", "room": name})

    def command(self, command: str, key: str, **fields: Any) -> None:
        """A room command for the room of conversation ``key`` (leave, topic, kick, ban, invite, …)."""
        self.ctx.send({"command": command, "room": key[1:], **fields})

    def browse(self) -> None:
        self.ctx.send({"command": "room_directory"})

    def list_members(self, key: str) -> None:
        self.ctx.send({"command": "room_members", "room": key[1:]})

    def restore(self) -> None:
        """After a (re)login: the server's room_list resets the badges; reload open rooms' newest page."""
        self._texts = {}
        for conversation in list(self.ctx.state.conversations.values()):
            if conversation.is_room and conversation.loaded:
                self._request(conversation, None)

    # -- events --------------------------------------------------------------------------------

    def room_list(self, message: dict[str, Any]) -> None:
        """The rooms with their badges, and the private conversations' unread counts (absolute)."""
        state = self.ctx.state
        for entry in message.get("rooms", []):
            conversation = self._room(entry)
            conversation.unread, conversation.mentions = int(entry.get("unread", 0)), int(entry.get("mentions", 0))
            if conversation.key == state.current and self.focused():
                self.mark_read(conversation)
        for entry in message.get("private", []):
            conversation = state.conversation(str(entry.get("peer", "")))
            if conversation.key != state.current:
                conversation.unread = int(entry.get("unread", 0))
        for entry in message.get("invites", []):
            if str(entry.get("room")) not in self.invites:
                self.ctx.notice("", f"{entry.get('by')} invited you to #{entry.get('room')}: use Browse rooms… to join")
            self.invites[str(entry.get("room"))] = dict(entry)
        if isinstance(message.get("as_of"), int):
            state.counted_up_to = max(state.counted_up_to, int(message["as_of"]))
        self.ctx.view.conversations_changed()

    def _room(self, info: dict[str, Any]) -> Conversation:
        """The conversation of a room, its info (topic, members, role) brought up to date."""
        conversation = self.ctx.state.conversation(room_key(str(info.get("room", ""))))
        conversation.online = True
        conversation.room.update({k: v for k, v in info.items() if k not in ("unread", "mentions", "read_seq")})
        conversation.last_seq = max(conversation.last_seq, int(info.get("last_seq", 0) or 0))
        return conversation

    def joined(self, message: dict[str, Any]) -> None:
        """A room this user created or joined here: open it."""
        room = message.get("room")
        if isinstance(room, dict):
            self.invites.pop(str(room.get("room")), None)
            conversation = self._room(room)
            self.ctx.view.conversations_changed()
            self.ctx.view.select(conversation.key)

    def message(self, message: dict[str, Any]) -> None:
        """A room message from someone else (or from this user's other device)."""
        key = room_key(str(message.get("room", "")))
        me = (self.ctx.state.user or "").casefold()
        sender = str(message.get("sender", ""))
        mention = bool(message.get("everyone")) or me in [str(n).casefold() for n in message.get("mentions", [])]
        line = Line(sender, str(message.get("message", "")), str(message.get("ts", "")), message.get("seq"),
                    own=sender.casefold() == me, mention=mention and sender.casefold() != me)
        self._show(key, line)

    def _show(self, key: str, line: Line) -> None:
        state = self.ctx.state
        conversation = state.conversation(key)
        seq = line.id if isinstance(line.id, int) else 0
        fresh = seq > conversation.last_seq
        conversation.last_seq = max(conversation.last_seq, seq)
        if conversation.loaded and conversation.append(line):
            self.ctx.view.lines_added(conversation.key, [line], False)
        if line.own:  # sent here or on another device: the room is read up to it
            conversation.unread = conversation.mentions = 0
        elif fresh and (conversation.key != state.current or not self.focused()):
            conversation.unread += 1
            conversation.mentions += line.mention
        elif fresh and conversation.key == state.current:
            conversation.unread += 1
            self.mark_read(conversation)
        if line.mention and fresh and not line.own:
            self.mentioned(conversation.key, line)
        self.ctx.view.conversations_changed()

    def ack(self, message: dict[str, Any]) -> None:
        key, text = self._texts.pop(str(message.get("client_id", "")), (None, None))
        if key is None or text is None:
            return
        self._show(key, Line(self.ctx.state.user or "me", text, str(message.get("ts", "")), message.get("seq"),
                             own=True))

    def message_error(self, message: dict[str, Any]) -> None:
        key, text = self._texts.pop(str(message.get("client_id", "")), (self.ctx.state.current, ""))
        self.ctx.notice(key, f"Not sent: {message.get('reason') or message.get('code')}" +
                        (f" ({text[:40]!r})" if text else ""))

    def changed_here(self, message: dict[str, Any]) -> None:
        """This connection's own change was made (its room_event goes to the others): follow it."""
        kind, room = str(message.get("type", "")), message.get("room")
        if not isinstance(room, str):
            return
        key = room_key(room)
        conversation = self.ctx.state.conversations.get(key)
        if kind in ("room_leave_result", "room_delete_result"):
            self.ctx.state.drop(key)
            self.ctx.view.conversations_changed()
            return
        if conversation is None:
            return
        if kind == "room_topic_result":
            conversation.room["topic"] = message.get("topic", "")
            self.ctx.notice(key, f"You set the topic: {message.get('topic')}")
        elif kind == "room_set_role_result" and message.get("role") == "owner":
            conversation.room["role"] = "moderator"
        self.ctx.view.conversations_changed()
        self.changed(key)

    def refused(self, message: dict[str, Any]) -> None:
        self.ctx.view.show_error(f"{message.get('reason') or message.get('code')}")

    def history(self, message: dict[str, Any]) -> None:
        saw_change(self.ctx, message.get("last_change_id"), room=True)  # the page shows every change up to it
        conversation = self.ctx.state.conversation(room_key(str(message.get("room", ""))))
        conversation.loading = False
        me = (self.ctx.state.user or "").casefold()
        lines = [decorated(Line(str(m.get("sender", "")), str(m.get("message", "")), str(m.get("ts", "")), m.get("seq"),
                                own=str(m.get("sender", "")).casefold() == me,
                                mention=bool(m.get("everyone")) or me in [str(n).casefold() for n in m.get("mentions", [])]),
                           m, self.ctx.state.user)
                 for m in message.get("messages", [])]
        oldest = conversation.oldest_id
        older = [line for line in lines if oldest is None or (line.id or 0) < oldest]
        newer = [line for line in lines if line not in older]
        if older:
            if oldest is None or len(older) == len(lines):
                conversation.has_more = bool(message.get("has_more"))
            fresh = conversation.prepend(older)
            if fresh:
                self.ctx.view.lines_added(conversation.key, fresh, True)
        elif oldest is None:
            conversation.has_more = bool(message.get("has_more"))
        for line in newer:
            if conversation.append(line):
                self.ctx.view.lines_added(conversation.key, [line], False)
            else:  # shown already: a reload after a reconnect brings what changed meanwhile
                refresh(self.ctx, conversation, line)
        if lines:
            conversation.last_seq = max(conversation.last_seq, max(line.id or 0 for line in lines))

    def event(self, message: dict[str, Any]) -> None:
        """Someone joined, left, was kicked or banned, the topic or a role changed, the room went."""
        key = room_key(str(message.get("room", "")))
        kind, user, by = message.get("kind"), str(message.get("user", "")), str(message.get("by", ""))
        me = (self.ctx.state.user or "").casefold()
        if kind == "deleted" or (kind in ("left", "kicked", "banned") and user.casefold() == me):
            reason = message.get("reason")
            self.ctx.state.drop(key)
            if kind != "left":
                self.ctx.notice("", f"{key}: {'deleted by' if kind == 'deleted' else kind + ' by'} {by}"
                                    + (f" ({reason})" if reason else ""))
            self.ctx.view.conversations_changed()
            return
        if kind == "invited" and user.casefold() == me:
            self.ctx.notice("", f"{by} invited you to {key}: use Browse rooms… to join")
            self.invites[key[1:]] = {**(message.get("info") or {}), "by": by}
            return
        if not isinstance(message.get("info"), dict) or key not in self.ctx.state.conversations and kind != "joined":
            return
        conversation = self._room(message["info"])
        if kind == "joined" and user.casefold() == me:  # joined on another device
            conversation.room["role"] = message.get("role", "member")
        if kind == "role" and user.casefold() == me:
            conversation.room["role"] = message.get("role")
        text = f"{user} {VERBS.get(str(kind), kind)}"
        if kind == "topic":
            text = f"{by} set the topic: {message.get('topic')}"
        elif kind == "role":
            text += f" {message.get('role')}"
        elif kind in ("kicked", "banned") and message.get("reason"):
            text += f" by {by}: {message.get('reason')}"
        self.ctx.notice(conversation.key, text)
        self.ctx.view.conversations_changed()
        self.changed(conversation.key)

    def read_marker(self, message: dict[str, Any]) -> None:
        """A badge cleared on another device (or this one's own mark_read answered): set it as told."""
        state = self.ctx.state
        if "room" in message:
            conversation = state.conversations.get(room_key(str(message["room"])))
            if conversation is None:
                return
            conversation.unread, conversation.mentions = int(message.get("unread", 0)), int(message.get("mentions", 0))
        elif "peer" in message:
            conversation = state.conversation(str(message["peer"]))
            conversation.unread = int(message.get("unread", 0))
            if isinstance(message.get("as_of"), int):
                state.counted_up_to = max(state.counted_up_to, int(message["as_of"]))
        self.ctx.view.conversations_changed()

    def directory(self, message: dict[str, Any]) -> None:
        """Public rooms, and the private ones this user was invited to (they are not in the directory)."""
        rooms = list(message.get("rooms", []))
        listed = {str(r.get("room")).casefold() for r in rooms}
        joined = {key[1:].casefold() for key in self.ctx.state.conversations if is_room(key)}
        rooms += [{**info, "invited": True} for name, info in self.invites.items()
                  if name.casefold() not in listed | joined]
        self.directory_listed(rooms)

    def members(self, message: dict[str, Any]) -> None:
        self.members_listed(room_key(str(message.get("room", ""))), message)

    def mark_private_read(self, conversation: Conversation) -> None:
        """A private conversation was opened: read up to its newest message, on every device."""
        newest = conversation.newest_id
        if self.available and newest is not None and not is_room(conversation.key) and conversation.key:
            self.ctx.send({"command": "mark_read", "peer": conversation.key, "id": newest})


def name_of(conversation: Conversation) -> str:
    return conversation.key[1:]
