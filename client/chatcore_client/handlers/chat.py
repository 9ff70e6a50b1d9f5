"""Handlers for the ``chat`` plugin: messages, acknowledgements, history pages, offline delivery."""

from __future__ import annotations

import itertools
import math
from typing import Any, Optional, Protocol

from chatcore_client.api import history_page
from chatcore_client.handlers import Context, Dispatcher
from chatcore_client.handlers.features import decorated, refresh, saw_change
from chatcore_client.state import ROOM, Conversation, Line, is_room

PAGE = 50  # messages per history request


class Rooms(Protocol):
    """What chat hands over to the rooms handlers (``handlers/rooms.py``) for ``#room`` keys."""

    @property
    def available(self) -> bool: ...

    def open(self, key: str) -> None: ...

    def load_older(self, key: str) -> bool: ...

    def send_text(self, key: str, text: str) -> bool: ...

    def restore(self) -> None: ...

    def mark_private_read(self, conversation: Conversation) -> None: ...


class ChatHandlers:
    """Routes messages into conversations and pages history in on demand."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._ids = itertools.count(1)
        self._texts: dict[str, str] = {}  # client_id -> text, until the chat_ack
        self.rooms: Optional[Rooms] = None  # rooms of the rooms plugin: their keys are handled there
        ctx.on_login.append(self.restore)

    def register(self, dispatcher: Dispatcher) -> None:
        """Claim this module's event types."""
        for event, handler in {
            "private_message": self.message, "broadcast_message": self.message, "chat_ack": self.ack,
            "get_history": self.history, "error:chat": self.chat_error, "error:get_history": self.history_error,
            "offline_done": self.offline_done, "caught_up": self.caught_up,
        }.items():
            dispatcher.register(event, handler)

    @property
    def available(self) -> bool:
        return self.ctx.state.server.offers("chat")

    # -- user actions --------------------------------------------------------------------------

    def open(self, key: str) -> None:
        """Make ``key`` the current conversation: clear its unread count, load history the first time."""
        if is_room(key) and self.rooms is not None:
            self.rooms.open(key)
            return
        state = self.ctx.state
        conversation = state.conversation(key)
        state.current = conversation.key
        had_unread, conversation.unread = conversation.unread, 0
        if not conversation.loaded and self.available:
            conversation.loaded = True
            self._request(conversation.key, None)
        elif had_unread:
            self._read(conversation)
        self.ctx.view.conversations_changed()

    def _read(self, conversation: Conversation) -> None:
        """The user sees this private conversation: its read marker follows (on every device)."""
        if self.rooms is not None and self.rooms.available and conversation.key != ROOM:
            self.rooms.mark_private_read(conversation)

    def load_older(self, key: str) -> bool:
        """Ask for the page before the oldest message shown; False when there is none or one is coming."""
        if is_room(key) and self.rooms is not None:
            return self.rooms.load_older(key)
        conversation = self.ctx.state.conversation(key)
        if not self.available or conversation.loading or not conversation.has_more or conversation.oldest_id is None:
            return False
        self._request(conversation.key, conversation.oldest_id)
        return True

    def _request(self, key: str, before: Any) -> None:
        self.ctx.state.conversation(key).loading = True
        command: dict[str, Any] = {"command": "get_history", "peer": key, "limit": PAGE}
        if before is not None:
            command["before"] = before
        self.ctx.send(command)

    def send_text(self, text: str) -> bool:
        """Send ``text`` to the current conversation; it is shown when the server acknowledges it."""
        text = text.strip()
        if not text or not self.available:
            return False
        key = self.ctx.state.current
        if is_room(key) and self.rooms is not None:
            return self.rooms.send_text(key, text)
        client_id = f"gui-{next(self._ids)}"
        self.ctx.state.pending[client_id] = key
        self.ctx.send({"command": "chat", "peer": key, "message": text, "client_id": client_id})
        self._texts[client_id] = text
        return True

    def restore(self) -> None:
        """After (re)login: reload the newest page of every conversation already open, unless the
        server replays what changed (``changes_since``): then only if ``caught_up`` says it could not."""
        self._texts = {}
        if not self.ctx.state.replaying:
            self.reload()
        if self.rooms is not None:
            self.rooms.restore()
        current = self.ctx.state.current
        self.open(current)

    def reload(self) -> None:
        """Ask again for the newest page of every private conversation and the global room shown."""
        for conversation in self.ctx.state.conversations.values():
            if conversation.loaded and self.available and not conversation.is_room:
                self._request(conversation.key, None)

    # -- events ----------------------------------------------------------------------------------

    def _show(self, key: str, line: Line) -> None:
        if isinstance(line.id, int) and not line.notice:
            self.ctx.state.newest_id = max(self.ctx.state.newest_id, line.id)
        conversation = self.ctx.state.conversation(key)
        if not conversation.append(line):
            return
        counted = isinstance(line.id, int) and line.id <= self.ctx.state.counted_up_to  # in room_list's counts
        if conversation.key != self.ctx.state.current and not line.own and not counted:
            conversation.unread += 1
        elif conversation.key == self.ctx.state.current and not line.own and key != ROOM:
            self._read(conversation)
        self.ctx.view.lines_added(conversation.key, [line], False)
        self.ctx.view.conversations_changed()

    def message(self, message: dict[str, Any]) -> None:
        """A private or broadcast message (live or ``offline: true``)."""
        sender = str(message.get("peer", ""))
        me = self.ctx.state.user
        if message.get("type") == "broadcast_message":
            key = ROOM
        elif me is not None and sender.casefold() == me.casefold():
            key = str(message.get("to", ""))  # sent by this user from another device
        else:
            key = sender
            self.ctx.state.conversation(key)
        self._show(key, Line(sender, str(message.get("message", "")), str(message.get("ts", "")),
                             message.get("id"), own=sender == me, offline=bool(message.get("offline"))))

    def ack(self, message: dict[str, Any]) -> None:
        """``chat_ack``: the server stored our message; show it now."""
        client_id = str(message.get("client_id", ""))
        key = self.ctx.state.pending.pop(client_id, None)
        text = self._texts.pop(client_id, None)
        if key is None or text is None:
            return
        self._show(key, Line(self.ctx.state.user or "me", text, str(message.get("ts", "")), message.get("id"),
                             own=True))

    def chat_error(self, message: dict[str, Any]) -> None:
        """A message was refused: say so where it was typed.

        Matched by ``client_id`` when the error echoes it; otherwise the oldest unacknowledged
        message (errors carry no id yet, so with several in flight this is a best guess).
        """
        pending = self.ctx.state.pending
        key = self.ctx.state.current
        client_id = message.get("client_id")
        if not (isinstance(client_id, str) and client_id in pending):
            client_id = next(iter(pending), None)
        reason = str(message.get("reason") or message.get("code"))
        retry = message.get("retry_after")
        if message.get("code") == "rate_limited" and isinstance(retry, (int, float)):
            reason = f"too many messages at once; wait {max(1, math.ceil(retry)):d} s and send it again"
        if client_id is not None:
            key = pending.pop(client_id)
            text = self._texts.pop(client_id, "")
            self.ctx.notice(key, f"Not sent: {reason} ({text[:40]!r})")
        else:
            self.ctx.notice(key, f"Not sent: {reason}")

    def offline_done(self, message: dict[str, Any]) -> None:
        """The offline backlog went out; if the server stopped early, say that more waits."""
        remaining = message.get("remaining")
        if isinstance(remaining, int) and remaining > 0:
            self.ctx.notice(ROOM, f"{remaining} more message(s) sent while you were away will arrive "
                                  "at your next login")

    def caught_up(self, message: dict[str, Any]) -> None:
        """After a reconnect the server sent what was missed (and replayed what changed since
        ``changes_since``): the change cursor moves to ``last_change_id``. When either had to stop
        short, the open conversations are reloaded (what is missing is in the history)."""
        state = self.ctx.state
        replayed, state.replaying = state.replaying, False
        saw_change(self.ctx, message.get("last_change_id"))
        if replayed and (message.get("complete") is False or message.get("changes_complete") is not True):
            self.reload()
        if message.get("complete") is False:
            self.ctx.notice(self.ctx.state.current, "Too much arrived while disconnected to replay it all: "
                                                    "scroll up for older messages.")

    def history(self, message: dict[str, Any]) -> None:
        """A page of history: older lines go on top; on a reload newer ones are merged below."""
        page = history_page(message)
        saw_change(self.ctx, message.get("last_change_id"))  # the page shows every change up to it
        conversation = self.ctx.state.conversation(page.peer)
        conversation.loading = False
        me = self.ctx.state.user
        lines = [decorated(Line(str(m.get("sender", "")), str(m.get("message", "")), str(m.get("ts", "")), m.get("id"),
                                own=m.get("sender") == me), m, me) for m in page.messages]
        oldest = conversation.oldest_id
        older = [line for line in lines if oldest is None or line.id is None or line.id < oldest]
        newer = [line for line in lines if line not in older]
        if older:
            if oldest is None or len(older) == len(lines):
                conversation.has_more = page.has_more
            fresh = conversation.prepend(older)
            if fresh:
                self.ctx.view.lines_added(conversation.key, fresh, True)
        elif oldest is None:
            conversation.has_more = page.has_more
        for line in newer:
            if conversation.append(line):
                self.ctx.view.lines_added(conversation.key, [line], False)
            else:  # shown already: a reload after a reconnect brings what changed meanwhile
                refresh(self.ctx, conversation, line)
        if conversation.key == self.ctx.state.current and conversation.key != ROOM:
            self._read(conversation)

    def history_error(self, message: dict[str, Any]) -> None:
        for conversation in self.ctx.state.conversations.values():
            conversation.loading = False
        self.ctx.notice(self.ctx.state.current, f"History unavailable: {message.get('reason')}")
