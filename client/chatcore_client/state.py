"""What the client knows, independent of any widget: conversations, their lines, unread counts.

Handlers change it; views render it. The global room has the key ``""``; a private
conversation is keyed by the peer's name as the server spells it; a room of the ``rooms``
plugin by ``#`` and its name (no username holds a ``#``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

from chatcore_client.api import ServerInfo

ROOM = ""
ROOM_TITLE = "Everyone"
ROOM_PREFIX = "#"  # conversation keys of rooms (the rooms plugin)


def is_room(key: str) -> bool:
    """True for a room of the rooms plugin (not the global room, not a peer)."""
    return key.startswith(ROOM_PREFIX)


def room_key(name: str) -> str:
    return ROOM_PREFIX + name


@dataclass(frozen=True)
class Line:
    """One line of a conversation: a message (with server id and time) or a notice."""

    sender: str
    text: str
    ts: str = ""  # ISO 8601 UTC from the server, or a legacy "MM/DD HH:MM"
    id: Optional[int] = None
    notice: bool = False
    own: bool = False
    offline: bool = False
    mention: bool = False  # a room message naming this user (or @room)
    edited: bool = False  # its sender changed the text (message_edited)
    deleted: bool = False  # a tombstone: the text was erased (message_deleted)
    reactions: tuple[tuple[str, int, bool], ...] = ()  # (emoji, count, this user among them)


def local_time(ts: str, now: Optional[datetime] = None) -> str:
    """``HH:MM`` today, ``Mon DD HH:MM`` otherwise, in local time; legacy stamps pass through."""
    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone()
    today = (now or datetime.now().astimezone()).date()
    return moment.strftime("%H:%M") if moment.date() == today else moment.strftime("%b %d %H:%M")


@dataclass
class Conversation:
    """The room or one peer: its lines in order, unread count, online state and paging cursor."""

    key: str
    online: bool = False
    unread: int = 0
    lines: list[Line] = field(default_factory=list)
    loaded: bool = False  # the first history page was asked for
    loading: bool = False  # a history request is in flight
    has_more: bool = True  # older history exists on the server
    ids: set[int] = field(default_factory=set)  # message ids (a room's: its seqs)
    mentions: int = 0  # unread messages naming this user (rooms)
    room: dict[str, Any] = field(default_factory=dict)  # a room's info and this user's role (rooms)
    last_seq: int = 0  # a room's newest seq known here

    @property
    def title(self) -> str:
        return ROOM_TITLE if self.key == ROOM else self.key

    @property
    def is_room(self) -> bool:
        return is_room(self.key)

    @property
    def newest_id(self) -> Optional[int]:
        return max(self.ids) if self.ids else None

    @property
    def oldest_id(self) -> Optional[int]:
        return min(self.ids) if self.ids else None

    def append(self, line: Line) -> bool:
        """Add a newer line at the end; False for a message already shown (same id)."""
        if line.id is not None:
            if line.id in self.ids:
                return False
            self.ids.add(line.id)
        self.lines.append(line)
        return True

    def find(self, line_id: int) -> Optional[Line]:
        """The message with ``line_id`` (a chat id, or a room's seq), if shown."""
        return next((line for line in self.lines if line.id == line_id and not line.notice), None)

    def replace(self, line: Line) -> bool:
        """Put ``line`` in place of the shown message with its id (edited, deleted, reacted to)."""
        for index, old in enumerate(self.lines):
            if old.id == line.id and not old.notice:
                self.lines[index] = line
                return True
        return False

    def prepend(self, older: Iterable[Line]) -> list[Line]:
        """Add a page of older lines (oldest first) at the start; returns those that were new."""
        fresh = [line for line in older if line.id is None or line.id not in self.ids]
        self.ids.update(line.id for line in fresh if line.id is not None)
        self.lines[:0] = fresh
        return fresh


@dataclass
class AppState:
    """The logged-in user's world."""

    user: Optional[str] = None
    server: ServerInfo = field(default_factory=ServerInfo)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    current: str = ROOM
    pending: dict[str, str] = field(default_factory=dict)  # chat client_id -> conversation key
    offers: dict[str, dict[str, Any]] = field(default_factory=dict)  # file_id -> file_offer
    newest_id: int = 0  # the highest message id seen: a reconnect asks for what came after it
    newest_change_id: Optional[int] = None  # the chat change id shown up to (None: none known yet)
    replaying: bool = False  # a token login named changes_since: until caught_up the cursor stays
    newest_room_change_id: Optional[int] = None  # the same for room messages (their own sequence)
    room_replaying: bool = False  # a token login named room_changes_since: until room_changes_done
    admin: bool = False  # the server says this user is a server administrator (login_result, admin_changed)
    counted_up_to: int = 0  # private messages up to this id are in the unread counts of the last room_list

    def __post_init__(self) -> None:
        self.conversation(ROOM).online = True

    def conversation(self, key: str) -> Conversation:
        """The conversation with ``key``, created on first mention (names match regardless of case)."""
        if key not in self.conversations:
            for existing in self.conversations:
                if existing and existing.casefold() == key.casefold():
                    return self.conversations[existing]
            self.conversations[key] = Conversation(key)
        return self.conversations[key]

    def ordered(self) -> list[Conversation]:
        """The global room first, then rooms alphabetically, then peers online before offline."""
        rooms = sorted((c for k, c in self.conversations.items() if is_room(k)), key=lambda c: c.key.casefold())
        peers = [c for k, c in self.conversations.items() if k != ROOM and not is_room(k)]
        peers.sort(key=lambda c: (not c.online, c.key.casefold()))
        return [self.conversations[ROOM], *rooms, *peers]

    def drop(self, key: str) -> None:
        """Forget a conversation (a room left, kicked from or deleted); the global room stays."""
        if key != ROOM:
            self.conversations.pop(key, None)
            if self.current == key:
                self.current = ROOM

    def reset_session(self) -> None:
        """Forget what belongs to a connection (pending acks, presence) but keep the lines shown."""
        self.pending.clear()
        self.replaying = self.room_replaying = False
        for key, conversation in self.conversations.items():
            conversation.online = key == ROOM or is_room(key)
            conversation.loading = False
