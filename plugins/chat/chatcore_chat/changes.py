"""Writer operations that change a stored chat message: edit, redaction and reactions.

Each finds the message in the requester's conversation and checks who may do what against
the database, inside the writer's transaction (an edit racing a deletion is decided in one
order); after the commit it answers the requesting connection and sends one event to every
other v2 session of the conversation (both users' for a private one, everyone's for the
global room). Legacy sessions get no event: old clients see nothing new. Each change that
happened is logged in the same transaction (``changelog.py``): its ``change_id`` is in the
event and the reply, and a client that was away is replayed it at its next login.
"""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Optional

from chatcore import protocol
from chatcore_chat import changelog, features, pgfeatures, store
from chatcore_chat.delivery import send
from chatcore_chat.faults import Refused, answer
from chatcore_chat.store import GLOBAL_ROOM, Message
from chatcore_chat.writer import Batch, Operation

if TYPE_CHECKING:
    from chatcore_chat.actions import MessageActions


def _redact(conn: sqlite3.Connection, message_id: int) -> None:
    # first undo what waits for the recipient (the pending totals count the old text), then erase
    conn.execute("UPDATE messages SET pending_for = NULL WHERE id = ? AND pending_for IS NOT NULL", (message_id,))
    features.redact(conn, message_id)


def _messages(conn: sqlite3.Connection, ids: list[int]) -> dict[int, Message]:
    if not ids:
        return {}
    rows = conn.execute(f"SELECT {store.COLUMNS} FROM messages WHERE id IN ({','.join('?' * len(ids))})", ids)
    return {message.id: message for message in map(store._row, rows)}


# The queries of the message features, by store: SQLite's (``features``, ``changelog``, ``store``)
# and PostgreSQL's (``pgfeatures``, the same names), chosen by ``features_of``.
SQLITE = SimpleNamespace(
    conversation_message=store.conversation_message, messages=_messages, edit=features.edit, redact=_redact,
    react=features.react, reactions=features.reactions, record=changelog.record, newest=changelog.newest,
    pruned_up_to=changelog.pruned_up_to, prune=changelog.prune, since=changelog.since,
    reacted_by=changelog.reacted_by, record_many=changelog.record_many)


def features_of(cluster: bool) -> Any:
    """The feature queries of the store in use."""
    return pgfeatures if cluster else SQLITE


class Change(Operation):
    """One request's change to message ``message_id`` of conversation ``conv``."""

    command = ""
    kind = ""  # its kind in the change log

    def __init__(self, actions: "MessageActions", origin: Any, conv: str, message_id: int) -> None:
        super().__init__()
        self.actions, self.origin, self.conv, self.message_id = actions, origin, conv, message_id
        self.reply: dict[str, Any] = {}
        self.event: Optional[dict[str, Any]] = None
        self.message: Optional[Message] = None

    @property
    def actor(self) -> str:
        return str(self.origin.user)

    @property
    def sql(self) -> Any:
        return features_of(self.actions.cluster)

    def apply(self, conn: Any, batch: Batch) -> None:
        self.reply, self.event = {}, None
        message = self.sql.conversation_message(conn, self.conv, self.message_id)
        if message is None or message.deleted:
            raise Refused("unknown_message", f"there is no message {self.message_id} in this conversation")
        self.message = message
        self.run(conn, message)
        if self.event is not None:  # something changed: log it, and say its change id
            change_id = self.sql.record(conn, message.id, self.conv, self.kind, self.actor, self.actions.stamp())
            self.event["change_id"] = self.reply["change_id"] = change_id
            self.actions.prune_changes(conn, change_id)

    def run(self, conn: Any, message: Message) -> None:
        raise NotImplementedError

    def own(self, message: Message) -> bool:
        """Whether the actor sent ``message``."""
        return message.sender.casefold() == self.actor.casefold()

    def after(self, batch: Batch) -> None:
        send(self.origin, protocol.encode({"type": f"{self.command}_result", **self.reply}))
        if self.event is not None and self.message is not None:
            self.actions.tell_conversation(self.message, self.event, skip=self.origin)
            if self.actions.publish is not None:  # cluster mode: the other nodes' sessions too
                self.actions.publish(self.message, self.event)

    def failed(self, error: BaseException) -> None:
        send(self.origin, protocol.encode({"type": "error", "command": self.command, **answer(error)}))

    def head(self, message: Message) -> dict[str, Any]:
        """The fields naming the message in events: ``id``, ``sender``, ``to`` (``""``: the room)."""
        return {"id": message.id, "sender": message.sender, "to": message.to}


class Edit(Change):
    """Replace the text of one's own message (within ``CHATCORE_CHAT_EDIT_WINDOW``)."""

    command = "message_edit"
    kind = changelog.EDIT

    def __init__(self, actions: "MessageActions", origin: Any, conv: str, message_id: int, text: str) -> None:
        super().__init__(actions, origin, conv, message_id)
        self.text = text

    def run(self, conn: Any, message: Message) -> None:
        if not self.own(message):
            raise Refused("forbidden", "you may edit only your own messages")
        now = self.actions.stamp()
        if self.actions.settings.edit_refusal(message.ts_ms, now):
            raise Refused("edit_window", f"a message may be edited for {self.actions.settings.edit_window:g} s "
                          "after it was sent")
        self.sql.edit(conn, message.id, self.text, now)
        edited = protocol.timestamp(now)
        self.reply = {"id": message.id, "edited": edited}
        self.event = {"type": "message_edited", **self.head(message), "message": self.text, "edited": edited}


class Redact(Change):
    """Delete a message: its sender, or a server administrator. The text is erased."""

    command = "message_delete"
    kind = changelog.DELETE

    def run(self, conn: Any, message: Message) -> None:
        if not self.own(message) and not getattr(self.origin, "admin", False):
            raise Refused("forbidden", "you may delete only your own messages")
        self.sql.redact(conn, message.id)
        self.reply = {"id": message.id}
        self.event = {"type": "message_deleted", **self.head(message), "by": self.actor}

    def after(self, batch: Batch) -> None:
        super().after(batch)
        scrubber = self.actions.service.scrubber
        if scrubber is not None:
            scrubber.redacted()


class React(Change):
    """Add or remove the actor's reaction; everyone sees the new totals."""

    command = "message_react"
    kind = changelog.REACTIONS

    def __init__(self, actions: "MessageActions", origin: Any, conv: str, message_id: int, emoji: str,
                 add: bool) -> None:
        super().__init__(actions, origin, conv, message_id)
        self.emoji, self.add = emoji, add

    def run(self, conn: Any, message: Message) -> None:
        settings = self.actions.settings
        changed = self.sql.react(conn, message.id, self.emoji, self.actor, self.add, self.actions.stamp(),
                                 settings.reactions_per_message)
        totals = self.sql.reactions(conn, [message.id], settings.reaction_names).get(message.id, [])
        self.reply = {"id": message.id, "reactions": totals}
        if changed:
            self.event = {"type": "message_reactions", **self.head(message), "reactions": totals}


def conversation_of(user: str, peer: str) -> str:
    """The conversation key of ``user`` with ``peer`` (``""``: the global room)."""
    return GLOBAL_ROOM if peer == GLOBAL_ROOM else store.conversation_key(user, peer)
