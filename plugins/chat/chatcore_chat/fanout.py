"""Delivery across the nodes of a cluster: the database decides the order, the bus only says
that something new exists.

Each node tracks, per conversation that concerns one of its sessions, the last ``seq`` it
delivered (``Fanout.last``). Everything that delivers runs as a writer operation, in the
writer's one executor, so a node handles its own commits and the other nodes' events in one
order: a message whose seq follows the last one is delivered; a lower seq is a duplicate and
dropped; a higher one means a gap, filled from PostgreSQL (in seq order) before it. After a
Redis outage (``bus.on_resync``) the node compares its seqs with the database's for its
sessions' conversations and fills every gap the same way.

A user's chat sessions are counted in ``presence`` (per node): a message to a user with no
session anywhere waits (``pending_for``) for their next login's backlog. A message stored
while they had none, whose event reaches a node where a session of theirs has logged in
since, is claimed there (``pgstore.claim``) and delivered live, unless the backlog took it:
exactly one of them does. A session counts here once its login's ``Track`` ran: the
conversation seqs it read then are its start (what came before is its backlog or history).

Handlers never block the bus reader: an event only queues an operation for the writer, and
sending to a session only queues (the core drops a client at its send limit).
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Callable, Iterable, Optional

from chatcore import protocol
from chatcore_chat import pgstore
from chatcore_chat.delivery import Relay, SessionLike, event
from chatcore_chat.store import GLOBAL_ROOM, Message
from chatcore_chat.writer import Batch, Operation, StoreClosed

log = logging.getLogger(__name__)
TOPIC = "chat.message"
CHANGE_TOPIC = "chat.change"  # an edit, deletion or reaction change: its event, to the conversation's sessions
SEQS = "chat.seqs"  # batch scratch: conv -> the seq this batch has taken it to
USERS = "chat.users"  # batch scratch: users tracked (+1) or untracked (-1) earlier in the batch
TRACKED = "chat.tracked"  # session.state: this session's login ran Track; it gets live messages
# a message to deliver, whether its recipient's sessions here get it, and whether this node
# claimed it from the recipient's offline backlog (then nobody taking it puts it back)
Arrival = tuple[Message, bool, bool]


def _participants(conv: str) -> tuple[str, ...]:
    return tuple(conv.split("\n")) if conv else ()


class Fanout:
    """This node's view of which conversation seqs it delivered, and its users with sessions."""

    def __init__(self, relay: Relay, bus: Any, node_id: str) -> None:
        self.relay, self.bus, self.node_id = relay, bus, node_id
        self.last: dict[str, int] = {}  # conv -> the last seq delivered (executor only)
        self.users: collections.Counter[str] = collections.Counter()  # tracked sessions per user (executor only)
        self.on_change: Callable[[Message, dict[str, Any], Any], None] = lambda message, body, skip: None

    def start(self, nodes: Any) -> None:
        """Forget this node's old presence, start the room's seq at its newest, then listen."""
        self.relay.writer.submit(_Start(self)).wait(30)
        self.bus.subscribe(TOPIC, self._heard)
        self.bus.subscribe(CHANGE_TOPIC, self._heard_change)
        self.bus.on_resync(self._resync)
        nodes.on_node_lost(self._node_lost)

    def stop(self) -> None:
        """This node leaves: its sessions are nobody's any more."""
        try:
            self.relay.writer.submit(_Forget(self.node_id)).wait(10)
        except Exception as error:
            log.warning("could not clear this node's chat presence: %s", error)

    # -- what the writer's operations call (the executor, one thread at a time) -------------------

    def local(self, conv: str, batch: Batch) -> bool:
        """Whether a session on this node may need messages of ``conv``."""
        if conv == GLOBAL_ROOM:
            return True
        changed = batch.scratch.get(USERS, {})
        return any(self.users[user] + changed.get(user, 0) > 0 for user in _participants(conv))

    def arrive(self, conn: Any, batch: Batch, conv: str, seq: int,
               known: Optional[tuple[Message, Optional[str]]] = None) -> list[Arrival]:
        """What to deliver now that ``conv`` has reached ``seq``: nothing for a duplicate, the
        missing seqs from the database (in order) for a gap. Pending messages for a user with
        sessions here are claimed in this transaction. Call ``advanced`` after the commit."""
        seqs: dict[str, int] = batch.scratch.setdefault(SEQS, {})
        planned = seqs.get(conv, self.last.get(conv))
        local = self.local(conv, batch)
        if planned is None:
            if not local:
                return []  # nobody here follows it
            planned = 0  # its first message since this node's users logged in
        if seq <= planned:
            return []
        seqs[conv] = seq
        if not local:
            return []
        rows = [known] if known is not None and seq == planned + 1 else pgstore.between(conn, conv, planned, seq)
        return self._claimed(conn, batch, rows)

    def _claimed(self, conn: Any, batch: Batch, rows: list[tuple[Message, Optional[str]]]) -> list[Arrival]:
        waiting: dict[str, list[int]] = collections.defaultdict(list)
        changed = batch.scratch.get(USERS, {})
        for message, pending_for in rows:
            if pending_for is not None and self.users[pending_for] + changed.get(pending_for, 0) > 0:
                waiting[pending_for].append(message.id)
        claimed: set[int] = set()
        for user, ids in waiting.items():
            claimed |= pgstore.claim(conn, user, ids)
        return [(message, pending_for is None or message.id in claimed, message.id in claimed)
                for message, pending_for in rows]

    def advanced(self, batch: Batch) -> None:
        """The batch committed: its seqs are this node's."""
        for conv, seq in batch.scratch.pop(SEQS, {}).items():
            self.last[conv] = max(self.last.get(conv, 0), seq)

    def deliver(self, arrivals: Iterable[Arrival], origin: Optional[SessionLike] = None, own: int = 0) -> None:
        """Send each message to this node's sessions that should have it (``origin`` is the
        connection that sent message ``own``: it gets no echo unless it wrote to itself)."""
        directory, relay, sender = self.relay.directory, self.relay, origin
        for message, to_recipient, claimed in arrivals:
            origin = sender if message.id == own else None
            frame = protocol.encode(event(message))
            if message.broadcast:
                for session in directory.authenticated():
                    if session is not origin and session.state.get(TRACKED):
                        relay.deliver(session, message, frame)
                continue
            if message.sender.casefold() != message.to.casefold():
                for session in directory.of_user(message.sender):
                    if session is not origin and session.v2 and session.state.get(TRACKED):
                        relay.deliver(session, message, frame)
            if not to_recipient:
                continue
            taken = sum(relay.deliver(session, message, frame) for session in directory.of_user(message.to)
                        if session.state.get(TRACKED))
            user = message.to.casefold()
            if claimed and not taken:
                relay.restore(user, [message.id])
            elif not taken and self.users[user]:  # every session of theirs here is closing
                self._submit(_KeepIfAbsent(user, message.id, self.node_id))

    def publish(self, message: Message, pending_for: Optional[str]) -> None:
        """Tell the other nodes (after the commit)."""
        self.bus.publish(TOPIC, {"conv": message.conv, "seq": message.seq, "id": message.id,
                                 "sender": message.sender, "to": message.to, "ts": message.ts_ms,
                                 "text": message.text, "pending": pending_for})

    def publish_change(self, message: Message, body: dict[str, Any]) -> None:
        """Tell the other nodes' sessions of the conversation about a change (after its commit)."""
        self.bus.publish(CHANGE_TOPIC, {"id": message.id, "conv": message.conv, "sender": message.sender,
                                        "to": message.to, "event": body})

    # -- the bus reader's handlers: they only queue ------------------------------------------------

    def _heard_change(self, body: dict[str, Any]) -> None:
        try:
            message = Message(int(body["id"]), str(body["conv"]), str(body["sender"]), str(body["to"]), 0, "")
            event_body = dict(body["event"])
        except (KeyError, TypeError, ValueError):
            log.warning("dropped a malformed %s event", CHANGE_TOPIC)
            return
        self._submit(_Tell(self, message, event_body))

    def _heard(self, body: dict[str, Any]) -> None:
        try:
            message = Message(int(body["id"]), str(body["conv"]), str(body["sender"]), str(body["to"]),
                              int(body["ts"]), str(body["text"]), seq=int(body["seq"]))
            pending = body.get("pending")
        except (KeyError, TypeError, ValueError):
            log.warning("dropped a malformed %s event", TOPIC)
            return
        self._submit(_Remote(self, message, pending if isinstance(pending, str) else None))

    def _resync(self) -> None:
        self._submit(_Resync(self))

    def _node_lost(self, node_id: str) -> None:
        self._submit(_Forget(node_id))

    def _submit(self, op: Operation) -> None:
        try:
            self.relay.writer.submit(op, inline=False)
        except StoreClosed:
            pass


class _Remote(Operation):
    """Another node committed a message: deliver it here in its conversation's order."""

    def __init__(self, fanout: Fanout, message: Message, pending_for: Optional[str]) -> None:
        super().__init__()
        self.fanout, self.message, self.pending_for = fanout, message, pending_for
        self.arrivals: list[Arrival] = []

    def apply(self, conn: Any, batch: Batch) -> None:
        self.arrivals = self.fanout.arrive(conn, batch, self.message.conv, self.message.seq,
                                           (self.message, self.pending_for))

    def after(self, batch: Batch) -> None:
        self.fanout.advanced(batch)
        self.fanout.deliver(self.arrivals)


class _Resync(Operation):
    """Events may have been lost: fill every gap of this node's conversations from the database."""

    def __init__(self, fanout: Fanout) -> None:
        super().__init__()
        self.fanout = fanout
        self.arrivals: list[Arrival] = []

    def apply(self, conn: Any, batch: Batch) -> None:
        fanout = self.fanout
        users = [user for user, count in fanout.users.items() if count > 0]
        self.arrivals = []
        for conv, seq in sorted(pgstore.conversation_seqs(conn, users).items()):
            self.arrivals += fanout.arrive(conn, batch, conv, seq)
        log.info("chat: resynchronised %d user(s)' conversations from the database; %d message(s) were missing here",
                 len(users), len(self.arrivals))

    def after(self, batch: Batch) -> None:
        self.fanout.advanced(batch)
        self.fanout.deliver(sorted(self.arrivals, key=lambda arrival: arrival[0].id))


class Track(Operation):
    """A session logged in on this node: count it present, and start its conversations at their
    newest seqs (what came before reaches it as backlog, catch-up or history)."""

    def __init__(self, fanout: Fanout, session: SessionLike, user_key: str) -> None:
        super().__init__()
        self.fanout, self.session, self.user_key = fanout, session, user_key
        self.seqs: dict[str, int] = {}

    def apply(self, conn: Any, batch: Batch) -> None:
        self.seqs = pgstore.conversation_seqs(conn, [self.user_key])
        pgstore.set_presence(conn, self.user_key, self.fanout.node_id, 1)
        planned: dict[str, int] = batch.scratch.setdefault(SEQS, {})
        for conv, seq in self.seqs.items():
            planned.setdefault(conv, self.fanout.last.get(conv, seq))
        users = batch.scratch.setdefault(USERS, {})
        users[self.user_key] = users.get(self.user_key, 0) + 1

    def after(self, batch: Batch) -> None:
        fanout = self.fanout
        fanout.users[self.user_key] += 1
        for conv, seq in self.seqs.items():
            self.fanout.last.setdefault(conv, seq)
        self.session.state[TRACKED] = True

    def failed(self, error: BaseException) -> None:
        log.warning("chat: could not count %r present: %s", self.session, error)


class Untrack(Operation):
    """A tracked session logged out. When it was its user's last here, the messages to them
    that were stored while they counted present here but have not reached this node yet (their
    seqs are beyond what it delivered) wait for their next login, unless they have a session
    on another node: nobody else would deliver them."""

    def __init__(self, fanout: Fanout, user_key: str) -> None:
        super().__init__()
        self.fanout, self.user_key = fanout, user_key

    def apply(self, conn: Any, batch: Batch) -> None:
        fanout, user = self.fanout, self.user_key
        pgstore.set_presence(conn, user, fanout.node_id, -1)
        users = batch.scratch.setdefault(USERS, {})
        users[user] = users.get(user, 0) - 1
        if fanout.users[user] + users[user] <= 0:
            planned: dict[str, int] = batch.scratch.get(SEQS, {})
            unseen = {}
            for conv, seq in pgstore.conversation_seqs(conn, [user]).items():
                after = planned.get(conv, fanout.last.get(conv, 0))  # none: it began after their login here
                if conv and seq > after:
                    unseen[conv] = after
            if unseen:
                pgstore.keep_unseen(conn, user, unseen)

    def after(self, batch: Batch) -> None:
        fanout = self.fanout
        fanout.users[self.user_key] -= 1
        if fanout.users[self.user_key] <= 0:
            del fanout.users[self.user_key]

    def failed(self, error: BaseException) -> None:
        self.after(Batch())  # this node forgets the session anyway; its row goes when the node does


class _Tell(Operation):
    """Another node changed a message: its event to this node's sessions of the conversation,
    in the writer's order (after the message itself, which came earlier on the bus)."""

    def __init__(self, fanout: Fanout, message: Message, body: dict[str, Any]) -> None:
        super().__init__()
        self.fanout, self.message, self.body = fanout, message, body

    def after(self, batch: Batch) -> None:
        self.fanout.on_change(self.message, self.body, None)


class _KeepIfAbsent(Operation):
    """Every session of the recipient here refused a message (they are closing): keep it for
    their next login, unless they have a session on another node (which got it)."""

    def __init__(self, user_key: str, message_id: int, node_id: str) -> None:
        super().__init__()
        self.user_key, self.message_id, self.node_id = user_key, message_id, node_id

    def apply(self, conn: Any, batch: Batch) -> None:
        pgstore.keep_if_absent(conn, self.user_key, self.message_id, self.node_id)


class _Start(Operation):
    def __init__(self, fanout: Fanout) -> None:
        super().__init__()
        self.fanout = fanout
        self.room = 0

    def apply(self, conn: Any, batch: Batch) -> None:
        pgstore.forget_node(conn, self.fanout.node_id)
        self.room = pgstore.conversation_seqs(conn, []).get(GLOBAL_ROOM, 0)

    def after(self, batch: Batch) -> None:
        self.fanout.last[GLOBAL_ROOM] = max(self.fanout.last.get(GLOBAL_ROOM, 0), self.room)


class _Forget(Operation):
    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def apply(self, conn: Any, batch: Batch) -> None:
        pgstore.forget_node(conn, self.node_id)

