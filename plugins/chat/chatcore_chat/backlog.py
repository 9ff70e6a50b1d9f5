"""The offline backlog: a session that logs in receives its user's undelivered messages page by
page, as fast as its client reads them, whatever their total size.

``Backlog.deliver`` runs in the logging-in connection's own thread (``chat_authenticated``,
after auth sent ``login_result``). Each round asks the writer for a page (``ClaimPage``): the
oldest undelivered messages, at most a count and a byte budget of encoded frames (always at
least one), marked delivered in that transaction and queued after the commit to every session
of the user not ready yet (two devices logging in at once each get the backlog once). The
loop then waits until the page has left each of those sessions' queues into the kernel before
claiming the next, so the send buffer never overflows; the writer's executor only queues.

A page counts as delivered to a session once it has left the server's queue: what the kernel
already accepted is beyond recall if the connection then drops. A message that had not left
any session's queue when they closed is marked undelivered again for the next login. A
session that reads nothing of its backlog for ``timeout`` seconds stops early: the rest stays
undelivered, the session becomes ready. The page that finds nothing more marks the sessions
ready in its transaction (so live messages keep their order) and sends what was held for
them; v2 sessions then get ``offline_done`` {delivered, remaining} if there was a backlog.
One loop per user runs at a time (``Turns``), so a page is in flight for a session only once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

from chatcore import protocol
from chatcore_chat import store
from chatcore_chat.delivery import READY_KEY, Relay, SessionLike, event, ready_now, send, session_state
from chatcore_chat.store import Message
from chatcore_chat.writer import Batch, Operation, StoreClosed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paging:
    """How much of a backlog one page holds, and how long a client may take to read nothing of it."""

    messages: int = 500
    bytes: int = 256 << 10  # of encoded frames; the plugin caps it at a quarter of the send buffer
    timeout: float = 30.0


class Turns:
    """One lock per user, made on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._lock:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class Queued:
    """One page as queued to one session: its backlog messages in order, and for each how many
    bytes of this page were queued behind it. With ``pending`` at most that many, the message
    has left the session's queue (whatever else was queued before or after the page)."""

    def __init__(self, session: SessionLike) -> None:
        self.session = session
        self.ids: list[int] = []
        self.behind: list[int] = []
        self.left = 0  # how many of ``ids`` have certainly left the queue

    def follow(self, timeout: float) -> str:
        """Wait until the whole page has left: ``"left"``, ``"closed"``, or ``"stalled"`` when
        no message of it left for ``timeout`` seconds."""
        session = self.session
        while self.left < len(self.ids):
            if not session.wait_drained(self.behind[self.left], timeout):
                return "closed" if session.closed else "stalled"
            self.left += 1
            pending = session.pending
            if session.closed:  # a closed session's queue reads empty: trust nothing read after it
                return "closed"
            while self.left < len(self.ids) and pending <= self.behind[self.left]:
                self.left += 1
        return "left"


class PageBudget:
    """Encodes a page's frames as ``take_pending`` admits its messages, up to a byte budget."""

    def __init__(self, max_bytes: int, offline: bool = True) -> None:
        self.max_bytes, self.offline = max_bytes, offline
        self.frames: list[Optional[bytes]] = []
        self.bytes = 0

    def admit(self, message: Message) -> bool:
        try:
            frame: Optional[bytes] = protocol.encode(event(message, offline=self.offline))
        except Exception:  # never expected; it must not lock the user's backlog for good
            log.warning("offline message %d cannot be sent; dropped from the backlog (it is in the history)",
                        message.id, exc_info=True)
            frame = None
        size = len(frame) if frame else 0
        if self.frames and self.bytes + size > self.max_bytes:
            return False
        self.frames.append(frame)
        self.bytes += size
        return True


def finish(session: SessionLike, remaining: int) -> None:
    """Make the session ready: tell a v2 client the backlog's outcome, then send what was held."""
    state = session_state(session)
    held, state.held, state.held_bytes = state.held, [], 0
    state.ready = True
    if session.v2 and (state.offline_sent or remaining):
        send(session, protocol.encode({"type": "offline_done", "delivered": state.offline_sent, "remaining": remaining}))
    for _, frame in held:
        send(session, frame)


class ClaimPage(Operation):
    """Take the next page of a user's backlog and queue it to the user's sessions not yet ready;
    with nothing left, make them ready (``final``). ``sent`` is set once its follow-up ran."""

    def __init__(self, backlog: "Backlog", session: SessionLike) -> None:
        super().__init__()
        self.backlog, self.session = backlog, session
        self.user_key = ""
        self.targets: list[SessionLike] = []
        self.messages: list[Message] = []
        self.frames: list[Optional[bytes]] = []
        self.final = False  # nothing was pending: the targets are ready now
        self.queued: list[Queued] = []
        self.failure: Optional[BaseException] = None
        self.sent = threading.Event()  # the follow-up ran (``failure`` says whether it failed)

    def apply(self, conn: Any, batch: Batch) -> None:
        user = self.session.user
        if user is None or ready_now(self.session, batch):
            return  # logged out meanwhile, or an earlier page finished this session
        sessions = self.backlog.relay.directory.of_user(user)
        if not any(s is self.session for s in sessions):
            return
        self.user_key = user.casefold()
        budget = PageBudget(self.backlog.paging.bytes)
        self.messages = self.backlog.relay.sql.take_pending(conn, self.user_key, self.backlog.paging.messages, budget.admit)
        self.frames = budget.frames
        self.targets = [s for s in sessions if not ready_now(s, batch) and not session_state(s).catching_up]
        if not self.messages:
            self.final = True
            batch.scratch.setdefault(READY_KEY, set()).update(s.id for s in self.targets)

    def after(self, batch: Batch) -> None:
        try:
            if self.final:
                for session in self.targets:
                    finish(session, remaining=0)
            elif self.messages:
                self.queued = [self._queue(session) for session in self.targets]
        finally:
            self.sent.set()

    def failed(self, error: BaseException) -> None:
        self.failure = error
        self.sent.set()

    def _queue(self, session: SessionLike) -> Queued:
        """Send the page to one session, with the held live messages older than its end, in id order."""
        state = session_state(session)
        last = self.messages[-1].id
        early = 0
        while early < len(state.held) and state.held[early][0].id < last:
            early += 1
        held, state.held = state.held[:early], state.held[early:]
        state.held_bytes -= sum(len(frame) for _, frame in held)
        stream = sorted([(m.id, f, True) for m, f in zip(self.messages, self.frames) if f is not None] +
                        [(m.id, f, False) for m, f in held])
        queued, sizes = Queued(session), []
        for message_id, frame, offline in stream:
            if not send(session, frame):
                break
            sizes.append(len(frame))
            if offline:
                queued.ids.append(message_id)
                queued.behind.append(len(sizes))  # an index for now; bytes below
        behind_from = [0] * (len(sizes) + 1)
        for index in range(len(sizes) - 1, -1, -1):
            behind_from[index] = behind_from[index + 1] + sizes[index]
        queued.behind = [behind_from[end] for end in queued.behind]
        state.offline_sent += len(queued.ids)
        stats = self.backlog.relay.stats
        stats.offline += len(queued.ids)
        stats.live += len(sizes) - len(queued.ids)  # the held live messages sent with the page
        return queued


class Finish(Operation):
    """End the backlog early for some sessions: ready now, the rest stays for a later login.
    ``done`` is set once they are ready."""

    def __init__(self, user_key: str, sessions: Sequence[SessionLike], sql: Any = store) -> None:
        super().__init__()
        self.user_key, self.sessions, self.sql = user_key, list(sessions), sql
        self.remaining = 0
        self.done = threading.Event()

    def apply(self, conn: Any, batch: Batch) -> None:
        self.remaining = self.sql.pending_totals(conn, self.user_key)[0]
        batch.scratch.setdefault(READY_KEY, set()).update(s.id for s in self.sessions)

    def after(self, batch: Batch) -> None:
        try:
            for session in self.sessions:
                finish(session, self.remaining)
        finally:
            self.done.set()

    def failed(self, error: BaseException) -> None:
        try:
            for session in self.sessions:  # live messages must flow even so
                finish(session, remaining=0)
        finally:
            self.done.set()


class Backlog:
    """Runs the page loop for a session that just logged in."""

    def __init__(self, relay: Relay, paging: Paging = Paging()) -> None:
        self.relay, self.paging = relay, paging
        self._turns = Turns()

    def deliver(self, session: SessionLike) -> None:
        """Send ``session`` its user's backlog, page by page; returns once the session is ready
        (or closed). Blocks the calling (the session's own) thread meanwhile."""
        user = session.user
        if user is None:
            return
        with self._turns.hold(user.casefold()):
            while not session.closed:
                page = ClaimPage(self, session)
                try:
                    self.relay.writer.submit(page)
                except StoreClosed:
                    return
                page.sent.wait()
                if page.failure is not None:  # nothing was taken; the backlog waits for a later login
                    log.warning("offline delivery to %r stopped: %s", session, page.failure)
                    self._finish(user.casefold(), [session])
                    return
                if page.final or not page.messages:
                    return
                if self._follow(page):
                    return

    def _follow(self, page: ClaimPage) -> bool:
        """Wait for the page to leave every session it went to; put back what none took, end the
        backlog for sessions that stopped reading. True when the loop's own session is done."""
        stalled: list[SessionLike] = []
        for queued in page.queued:
            outcome = queued.follow(self.paging.timeout)
            if outcome == "stalled":
                log.info("%r read nothing of its offline backlog for %g s; the rest waits for its next login",
                         queued.session, self.paging.timeout)
                stalled.append(queued.session)
                queued.left = len(queued.ids)  # still queued: it may yet read them
        sent = [m.id for m, frame in zip(page.messages, page.frames) if frame is not None]
        taken = max((queued.left for queued in page.queued), default=0)
        if taken < len(sent):
            self.relay.restore(page.user_key, sent[taken:])
        if stalled:
            self._finish(page.user_key, stalled)
        return page.session.closed or any(s is page.session for s in stalled)

    def _finish(self, user_key: str, sessions: Sequence[SessionLike]) -> None:
        try:
            op = Finish(user_key, sessions, self.relay.sql)
            self.relay.writer.submit(op)
        except StoreClosed:
            return
        op.done.wait()
