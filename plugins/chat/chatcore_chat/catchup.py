"""Catching up after a reconnect: a login that names ``since`` (the newest message id its client
has seen) receives every message it may see with a higher id, in order, paged and paced like
the offline backlog, up to a cap, then ``caught_up`` {complete, delivered, last_id}.

Unlike the backlog, a catch-up belongs to one session (its client's own cursor): other
devices of the user are unaffected, and nothing is put back when a page is lost, since the
client reconnects naming what it has. Pending offline messages it covers are marked delivered.
Live messages held for the session meanwhile are dropped where the catch-up carries them, so
nothing arrives twice. Past the cap (``complete: false``) the client reloads history instead.
A login that also names ``changes_since`` is then replayed the changes since (``replay.py``)
before it is made ready, and ``caught_up`` adds ``changes_complete`` and ``last_change_id``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Optional

from chatcore import protocol
from chatcore_chat import store
from chatcore_chat.backlog import Backlog, PageBudget, Queued
from chatcore_chat.delivery import READY_KEY, RelayStats, SessionLike, ready_now, send, session_state
from chatcore_chat.store import Message
from chatcore_chat.writer import Batch, Operation, StoreClosed

if TYPE_CHECKING:
    from chatcore_chat.replay import Outcome, Replay

log = logging.getLogger(__name__)


def finish(session: SessionLike, complete: bool, delivered: int, last_id: int,
           changes: Optional["Outcome"] = None) -> None:
    """Make the session ready: say how the catch-up went (and its change replay, when it had
    one), then send the live messages held for it that the catch-up did not carry."""
    state = session_state(session)
    held, state.held, state.held_bytes = state.held, [], 0
    state.ready, state.catching_up = True, False
    body: dict[str, Any] = {"type": "caught_up", "complete": complete, "delivered": delivered, "last_id": last_id}
    if changes is not None:
        body["changes_complete"], body["last_change_id"] = changes
    send(session, protocol.encode(body))
    for message, frame in held:
        if message.id > last_id:
            send(session, frame)


class CatchUpPage(Operation):
    """Take the next page after ``cursor`` for the session; the last page (or the cap reached)
    makes it ready in the same transaction, so live messages keep their order (unless a change
    replay follows: ``ends=False``)."""

    def __init__(self, session: SessionLike, cursor: int, limit: int, max_bytes: int, delivered: int,
                 stats: Optional[RelayStats] = None, ends: bool = True, sql: Any = store) -> None:
        super().__init__()
        self.ends, self.sql = ends, sql
        self.stats = stats if stats is not None else RelayStats()  # counted in the executor
        self.session, self.cursor, self.limit, self.max_bytes = session, cursor, limit, max_bytes
        self.delivered = delivered  # by the pages before this one
        self.messages: list[Message] = []
        self.frames: list[Optional[bytes]] = []
        self.more = False  # messages beyond this page exist (within the page limit asked for)
        self.final = False  # this page made the session ready
        self.queued: Optional[Queued] = None
        self.failure: Optional[BaseException] = None
        self.sent = threading.Event()

    def apply(self, conn: Any, batch: Batch) -> None:
        user = self.session.user
        if user is None or ready_now(self.session, batch):
            return
        budget = PageBudget(self.max_bytes, offline=False)
        self.messages = self.sql.take_since(conn, user.casefold(), self.cursor, self.limit + 1, budget.admit)
        self.frames = budget.frames
        if len(self.messages) > self.limit:  # one more was read only to know whether more exist
            self.messages, self.frames, self.more = self.messages[:self.limit], self.frames[:self.limit], True
        elif len(self.messages) == self.limit or (self.messages and budget.bytes >= self.max_bytes):
            self.more = True  # the budget stopped the page: look again
        if not self.more:
            self.final = True
            if self.ends:
                batch.scratch.setdefault(READY_KEY, set()).add(self.session.id)

    def after(self, batch: Batch) -> None:
        try:
            if self.messages:
                self.queued = self._queue()
            if self.final and self.ends:  # the last page: ready at once, so live messages flow from here on
                queued = self.queued.ids if self.queued is not None else []
                finish(self.session, True, self.delivered + len(queued), queued[-1] if queued else self.cursor)
        finally:
            self.sent.set()

    def failed(self, error: BaseException) -> None:
        self.failure = error
        self.sent.set()

    def _queue(self) -> Queued:
        """Send the page, dropping held live messages it carries."""
        state = session_state(self.session)
        last = self.messages[-1].id
        state.held = [(m, f) for m, f in state.held if m.id > last]
        state.held_bytes = sum(len(f) for _, f in state.held)
        queued, sizes = Queued(self.session), []
        for message, frame in zip(self.messages, self.frames):
            if frame is None:
                continue
            if not send(self.session, frame):
                break
            sizes.append(len(frame))
            queued.ids.append(message.id)
        self.stats.catch_up += len(queued.ids)
        total = sum(sizes)
        for size in sizes:
            total -= size
            queued.behind.append(total)
        return queued


class CatchUp:
    """Runs the catch-up loop for a session that logged in naming ``since``."""

    def __init__(self, backlog: Backlog, cap: int, replay: Optional["Replay"] = None) -> None:
        self.backlog, self.cap, self.replay = backlog, cap, replay

    def deliver(self, session: SessionLike, since: int, changes_since: Optional[int] = None) -> None:
        """Send what the session missed after ``since`` (then the changes after ``changes_since``,
        when given); returns once it is ready (or closed)."""
        relay, paging = self.backlog.relay, self.backlog.paging
        replay = self.replay if changes_since is not None else None
        cursor, delivered = max(0, since), 0
        session_state(session).catching_up = True  # the user's shared offline backlog leaves it out
        while not session.closed and session.user is not None:
            room = self.cap - delivered
            page = CatchUpPage(session, cursor, max(1, min(paging.messages, room)), paging.bytes, delivered,
                               relay.stats, ends=replay is None, sql=relay.sql)
            try:
                relay.writer.submit(page)
            except StoreClosed:
                return
            page.sent.wait()
            if page.failure is not None:
                log.warning("catch-up of %r stopped: %s", session, page.failure)
                self._end(session, False, delivered, cursor, None if replay is None else (False, changes_since or 0))
                return
            if page.final and replay is None:
                return  # the last page made the session ready itself
            if not page.final and (not page.messages or page.queued is None):
                return  # the session went away
            if page.queued is not None:
                outcome = page.queued.follow(paging.timeout)
                if outcome == "closed":
                    return
                delivered += len(page.queued.ids)  # left, or still queued for a client that may yet read it
                cursor = page.messages[-1].id
                if outcome == "stalled" or (delivered >= self.cap and not page.final):
                    self._end(session, False, delivered, cursor, None if replay is None else (False, changes_since or 0))
                    return
            if page.final:
                break
        if replay is not None and changes_since is not None:
            replayed = replay.run(session, changes_since)
            if replayed is not None:
                self._end(session, True, delivered, cursor, replayed)

    def _end(self, session: SessionLike, complete: bool, delivered: int, last_id: int,
             changes: Optional["Outcome"] = None) -> None:
        """Stop before the end, or after the change replay: the session becomes ready (through
        the writer, in order)."""
        op = _Ready(session, complete, delivered, last_id, changes)
        try:
            self.backlog.relay.writer.submit(op)
        except StoreClosed:
            return
        op.done.wait()


class _Ready(Operation):
    """Make a session ready in the writer's order, then tell it how its catch-up ended."""

    def __init__(self, session: SessionLike, complete: bool, delivered: int, last_id: int,
                 changes: Optional["Outcome"] = None) -> None:
        super().__init__()
        self.session, self.complete, self.delivered, self.last_id = session, complete, delivered, last_id
        self.changes = changes
        self.done = threading.Event()

    def apply(self, conn: Any, batch: Batch) -> None:
        batch.scratch.setdefault(READY_KEY, set()).add(self.session.id)

    def after(self, batch: Batch) -> None:
        try:
            finish(self.session, self.complete, self.delivered, self.last_id, self.changes)
        finally:
            self.done.set()

    def failed(self, error: BaseException) -> None:
        try:
            finish(self.session, self.complete, self.delivered, self.last_id, self.changes)
        finally:
            self.done.set()
