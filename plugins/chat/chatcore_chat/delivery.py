"""Storing and delivering messages: the writer operations for sending and undo, per-session readiness.

Every message is committed before anyone hears of it; delivery runs after the commit by the
writer's one executor at a time (its thread, or the submitting thread when the store was
idle), so each recipient receives messages in id order. Sends never block (a
session only queues), no lock is held while sending, and a failed send to one session is
logged and skipped without touching the others or the stored message.

Readiness: a freshly logged-in session is *not ready* until its offline backlog went out
(``backlog.py``); live messages for it wait in its ``held`` list meanwhile, so it always
sees its offline backlog first, then everything newer, in order.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Protocol, Sequence

from chatcore import protocol
from chatcore_chat import changelog, pgfeatures, pgstore, store
from chatcore_chat.faults import answer
from chatcore_chat.quotas import Quotas
from chatcore_chat.store import GLOBAL_ROOM, Message
from chatcore_chat.writer import Batch, Operation, Writer

if TYPE_CHECKING:
    from chatcore_chat.fanout import Arrival, Fanout

log = logging.getLogger(__name__)
STATE_KEY = "chat"  # this plugin's slot in session.state
READY_KEY = "chat.ready"  # batch scratch: ids of sessions made ready earlier in the same transaction
Clock = Callable[[], float]


class SessionLike(Protocol):
    """What delivery needs of a chatcore session."""

    id: int
    user: Optional[str]
    state: dict[str, Any]

    @property
    def v2(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    @property
    def pending(self) -> int: ...

    def send_frame(self, frame: bytes) -> bool: ...

    def wait_drained(self, below: int = 0, timeout: Optional[float] = None) -> bool: ...

    def close(self, reason: str = "") -> None: ...


class Directory(Protocol):
    """What delivery needs of the server's session registry."""

    def of_user(self, username: str) -> Sequence[Any]: ...

    def authenticated(self) -> Sequence[Any]: ...


@dataclass
class SessionChat:
    """Per-session delivery state; touched only by the writer's executor (one thread at a time)."""

    ready: bool = False
    held: list[tuple[Message, bytes]] = field(default_factory=list)  # live messages and their frames, in id order
    held_bytes: int = 0
    offline_sent: int = 0  # backlog messages queued to this session since its login
    catching_up: bool = False  # it gets what it missed by its own cursor (catchup.py), not the shared backlog
    window: Optional["Window"] = None  # made by the session's first acknowledged post


@dataclass
class RelayStats:
    """Messages stored and frames queued to recipients, for the metrics. Only the writer's
    executor (one thread at a time) counts, so plain integers suffice."""

    private: int = 0  # messages stored, by kind
    broadcast: int = 0
    live: int = 0  # deliveries: sent as they were stored (or held and sent after the backlog)
    offline: int = 0  # ... from the offline backlog
    catch_up: int = 0  # ... by a reconnecting session's catch-up


class Window:
    """At most ``size`` of a session's messages queued or being stored. A BoundedSemaphore
    costs a Condition per session and a notify per release; this waits (and allocates its
    Condition) only when the window is actually full."""

    def __init__(self, size: int) -> None:
        self._free = self._size = size
        self._lock = threading.Lock()
        self._room: Optional[threading.Condition] = None
        self._waiting = 0

    def acquire(self, timeout: Optional[float] = None) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds for one; False if none came."""
        with self._lock:
            if self._free:
                self._free -= 1
                return True
            if self._room is None:
                self._room = threading.Condition(self._lock)
            self._waiting += 1
            try:
                if not self._room.wait_for(lambda: self._free > 0, timeout):
                    return False
            finally:
                self._waiting -= 1
            self._free -= 1
            return True

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            if self._free >= self._size:
                raise ValueError("window released more often than acquired")
            self._free += 1
            if self._waiting and self._room is not None:
                self._room.notify()


def session_state(session: SessionLike) -> SessionChat:
    """The session's delivery state, created on first use (``setdefault`` is atomic)."""
    state = session.state.get(STATE_KEY)
    return state if state is not None else session.state.setdefault(STATE_KEY, SessionChat())


def event(message: Message, offline: bool = False) -> dict[str, Any]:
    """The legacy event (``peer`` = sender, ``message``) plus ``id``, ``ts``, ``to`` (and ``offline``)."""
    body: dict[str, Any] = {
        "type": "broadcast_message" if message.broadcast else "private_message",
        "peer": message.sender, "message": message.text,
        "id": message.id, "ts": message.ts, "to": message.to,
    }
    if offline:
        body["offline"] = True
    return body


def send(session: SessionLike, frame: bytes) -> bool:
    """Queue one frame; a failure is logged and reported, never raised."""
    try:
        return bool(session.send_frame(frame))
    except Exception:
        log.exception("sending a chat message to %r failed", session)
        return False


def ready_now(session: SessionLike, batch: Optional[Batch] = None) -> bool:
    """Whether ``session`` already got its offline backlog (counting claims earlier in ``batch``)."""
    if batch is not None and session.id in batch.scratch.get(READY_KEY, ()):
        return True
    return session_state(session).ready


class Relay:
    """The chat plugin's way to store and deliver; hands operations to the writer."""

    def __init__(self, writer: Writer, directory: Directory, clock: Clock, quotas: Optional[Quotas] = None,
                 held_limit: int = 1 << 20, in_flight: int = 256) -> None:
        self.writer = writer
        self.directory = directory
        self.clock = clock
        self.quotas = quotas if quotas is not None else Quotas()
        self.held_limit = held_limit  # bytes held for a session not yet ready before it is dropped
        self.in_flight = in_flight  # acknowledged posts one session may have queued before its reads pause
        self._last_ms = 0  # writer's executor only: keeps ts non-decreasing along ids
        self.stats = RelayStats()
        self.sql: Any = store  # the store's queries: ``store`` (SQLite) or ``pgstore`` (cluster mode)
        self.fanout: Optional["Fanout"] = None  # cluster mode: delivery across nodes (``fanout.py``)

    def stamp(self) -> int:
        """Now in milliseconds, never earlier than the previous stamp (writer's executor only)."""
        now = int(self.clock() * 1000)
        self._last_ms = max(self._last_ms, now)
        return self._last_ms

    def post(self, origin: SessionLike, sender: str, to: str, text: str,
             ack: Optional[dict[str, Any]] = None, wait: Optional[float] = None) -> "Post":
        """Queue a message from ``sender`` (on connection ``origin``) to ``to`` (``""`` = everyone).

        With ``ack`` (the ``chat_ack`` fields beyond id and ts), the writer acknowledges to
        ``origin`` after the commit, so the connection need not wait and can pipeline; at most
        ``in_flight`` such posts per session are queued. With ``wait``, the caller also waits for
        room in the store's queue (backpressure); either wait raises TimeoutError after ``wait`` s.
        """
        window = None
        if ack is not None:
            state = session_state(origin)
            if state.window is None:
                state.window = Window(self.in_flight)
            window = state.window
        if window is not None and not window.acquire(timeout=wait):
            raise TimeoutError("too many messages waiting to be stored")
        try:
            return self.writer.submit(Post(self, origin, sender, to, text, ack, window), wait,  # type: ignore[return-value]
                                      inline=not getattr(origin, "more_requests", False))
        except BaseException:
            if window is not None:
                window.release()
            raise

    def deliver(self, session: SessionLike, message: Message, frame: bytes) -> bool:
        """Send to a ready session, or hold until its offline backlog went out; True if taken.

        What is held counts as queued for the session: past ``held_limit`` bytes (the core's
        send buffer) the session is dropped, as the core drops a client that does not read."""
        state = session_state(session)
        if state.ready:
            self.stats.live += 1  # before the frame goes: whoever received it finds it counted
            if send(session, frame):
                return True
            self.stats.live -= 1
            return False
        if session.closed:
            return False
        state.held.append((message, frame))
        state.held_bytes += len(frame)
        if state.held_bytes > self.held_limit:
            session.close("too many live messages arrived while the offline backlog was being sent")
            return False
        return True

    def restore(self, user_key: str, ids: Sequence[int]) -> None:
        """Every send of these messages failed: queue them for the user's next login again."""
        log.info("no session of %s took %d message(s); kept for the next login", user_key, len(ids))
        try:
            self.writer.submit(Restore(user_key, ids, self.sql))
        except Exception:
            log.exception("could not keep undelivered messages for %s", user_key)


class Post(Operation):
    """Store one message, then acknowledge it (if asked) and deliver it to whoever should get it now."""

    one_statement = True  # the insert (its triggers run inside it); cluster mode uses PostgreSQL

    def __init__(self, relay: Relay, origin: SessionLike, sender: str, to: str, text: str,
                 ack: Optional[dict[str, Any]] = None, window: Optional[Window] = None) -> None:
        super().__init__()
        self.relay, self.origin, self.sender, self.to, self.text = relay, origin, sender, to, text
        self.ack, self.window = ack, window
        self.stored_pending = False
        self.arrivals: list["Arrival"] = []  # cluster mode: what to deliver here, in seq order

    def _answer(self, reply: dict[str, Any]) -> None:
        """Acknowledge (or report failure) to the sending connection and free its window slot."""
        if self.window is not None:
            self.window.release()
            self.window = None
        if self.ack is not None:
            send(self.origin, protocol.encode(reply))

    def failed(self, error: BaseException) -> None:
        echo = {"client_id": self.ack["client_id"]} if self.ack and "client_id" in self.ack else {}
        self._answer({**echo, "type": "error", "command": "chat", **answer(error)})

    def apply(self, conn: Any, batch: Batch) -> None:
        if self.relay.fanout is not None:
            self._apply_cluster(conn, batch)
            return
        if self.to == GLOBAL_ROOM:
            conv, pending_for = GLOBAL_ROOM, None
        else:
            conv = store.conversation_key(self.sender, self.to)
            online = any(ready_now(s, batch) for s in self.relay.directory.of_user(self.to))
            pending_for = None if online else self.to.casefold()
        self.stored_pending = pending_for is not None
        stamp = self.relay.stamp()
        try:  # the insert is this operation's only change; a quota aborts it (and nothing else)
            self.result = store.insert_message(conn, conv, self.sender, self.to, stamp, self.text, pending_for)
        except sqlite3.IntegrityError as exc:
            refusal = self.relay.quotas.refusal(exc, self.to, stamp)
            if refusal is None:
                raise
            raise refusal from None

    def _apply_cluster(self, conn: Any, batch: Batch) -> None:
        """PostgreSQL: wait for the recipient only if they have no session on any node; the
        limits are checked against the cluster's counters (``pgstore.check_quotas``)."""
        fanout = self.relay.fanout
        assert fanout is not None
        stamp = self.relay.stamp()
        if self.to == GLOBAL_ROOM:
            conv, pending_for = GLOBAL_ROOM, None
            pgstore.check_quotas(conn, self.relay.quotas, self.sender, self.to, stamp, self.text, None)
        else:
            conv = store.conversation_key(self.sender, self.to)
            pending_for = pgstore.prepare_private(conn, self.relay.quotas, self.sender, self.to, stamp, self.text)
        message = pgstore.insert_message(conn, conv, self.sender, self.to, stamp, self.text, pending_for)
        self.arrivals = fanout.arrive(conn, batch, conv, message.seq, (message, pending_for))
        self.stored_pending, self.result = pending_for is not None, message

    def after(self, batch: Batch) -> None:
        message: Message = self.result
        if message.broadcast:
            self.relay.stats.broadcast += 1
        else:
            self.relay.stats.private += 1
        # A private message goes out before the acknowledgement (whose send would delay it),
        # except to the sender themself (their session has the ack before the event); the
        # acknowledgement of a broadcast does not wait for its fan-out to everyone online.
        ack_first = message.broadcast or self.sender.casefold() == self.to.casefold()
        if ack_first:
            self._acknowledge(message)
        try:  # a failed acknowledgement must not cost the recipients their message, nor the reverse
            fanout = self.relay.fanout
            if fanout is not None:
                fanout.advanced(batch)
                fanout.publish(message, message.to.casefold() if self.stored_pending else None)
                fanout.deliver(self.arrivals, self.origin, message.id)
            else:
                self._deliver(message)
        except Exception:
            log.exception("delivering chat message %d failed", message.id)
        if not ack_first:
            self._acknowledge(message)

    def _acknowledge(self, message: Message) -> None:
        try:
            self._answer({"type": "chat_ack", "id": message.id, "ts": message.ts, **(self.ack or {})})
        except Exception:
            log.exception("acknowledging chat message %d failed", message.id)

    def _deliver(self, message: Message) -> None:
        """Send to everyone who should have it now; keep it for the recipient's next login if nobody took it."""
        frame = protocol.encode(event(message))
        if message.broadcast:
            for session in self.relay.directory.authenticated():
                if session is not self.origin:
                    self.relay.deliver(session, message, frame)
            return
        if self.sender.casefold() != self.to.casefold():
            for session in self.relay.directory.of_user(self.sender):
                if session is not self.origin and session.v2:  # keep the sender's other devices in sync
                    self.relay.deliver(session, message, frame)
        if self.stored_pending:
            return  # the recipient's next backlog page delivers it, in order
        taken = 0
        for session in self.relay.directory.of_user(self.to):
            taken += self.relay.deliver(session, message, frame)
        if not taken:
            self.relay.restore(self.to.casefold(), [message.id])


class Restore(Operation):
    """Mark messages undelivered again for their recipient."""

    def __init__(self, user_key: str, ids: Sequence[int], sql: Any = store) -> None:
        super().__init__()
        self.user_key, self.ids, self.sql = user_key, list(ids), sql

    def apply(self, conn: Any, batch: Batch) -> None:
        self.sql.restore_pending(conn, self.user_key, self.ids)


class Purge(Operation):
    """Delete everything stored of a removed user (``store.delete_user``); ``result`` is how many went."""

    def __init__(self, user_key: str, stamp: Callable[[], int], sql: Any = store) -> None:
        super().__init__()
        self.user_key, self.stamp, self.sql = user_key, stamp, sql

    def apply(self, conn: Any, batch: Batch) -> None:
        log: Any = changelog if self.sql is store else pgfeatures  # the change log and reactions
        reacted = log.reacted_by(conn, self.user_key)  # their reactions go: those messages changed
        self.result = self.sql.delete_user(conn, self.user_key)  # their conversations' changes go with them
        log.record_many(conn, reacted, changelog.REACTIONS, "", self.stamp())


class Delete(Operation):
    """Delete messages by id (retention); ``result`` is how many went."""

    def __init__(self, ids: Iterable[int], sql: Any = store) -> None:
        super().__init__()
        self.ids, self.sql = list(ids), sql

    def apply(self, conn: Any, batch: Batch) -> None:
        self.result = self.sql.delete_ids(conn, self.ids)
