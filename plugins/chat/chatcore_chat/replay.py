"""Replaying changes after a reconnect: a login that names ``since`` and ``changes_since`` (the
newest change id its client saw) is sent, after the messages it missed, the messages it may
read that were edited, deleted or reacted to since then, each once, in the order of its newest
change and as it is now: ``message_deleted``, or ``message_edited`` and/or ``message_reactions``,
each with ``change_id`` and ``replayed: true``. Paged and paced like the catch-up; at most
``CHATCORE_CHAT_CHANGES_MAX`` messages.

The replay covers the changes up to the newest id when it starts (``up_to``); later ones reach
the session live. It is incomplete when the log was pruned beyond the cursor, when the cursor
is newer than any change (another server's, a restored backup's), when the cap was reached or
the client stopped reading: the client then reloads what it shows.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from chatcore import protocol
from chatcore_chat import changelog, features, pgfeatures
from chatcore_chat.backlog import Backlog, Queued
from chatcore_chat.changelog import Changed
from chatcore_chat.delivery import SessionLike, send
from chatcore_chat.store import COLUMNS, Message, _row
from chatcore_chat.writer import Batch, Operation, StoreClosed

if TYPE_CHECKING:
    from chatcore_chat.actions import MessageActions

Outcome = tuple[bool, int]  # (changes_complete, last_change_id)


def frames_of(changed: Changed, message: Message, reactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events that bring a client's copy of ``message`` up to date with ``changed``."""
    head = {"id": message.id, "sender": message.sender, "to": message.to, "change_id": changed.change_id,
            "replayed": True}
    if message.deleted:
        return [{"type": "message_deleted", **head, "by": changed.deleted_by or ""}]
    events = []
    if changelog.EDIT in changed.kinds and message.edited_ms is not None:
        events.append({"type": "message_edited", **head, "message": message.text,
                       "edited": protocol.timestamp(message.edited_ms)})
    if changelog.REACTIONS in changed.kinds:
        events.append({"type": "message_reactions", **head, "reactions": reactions})
    return events


class ChangesPage(Operation):
    """The next page of changed messages after ``cursor`` for the session (up to ``up_to``,
    fixed by the first page), as frames; sent after the writer's commit, in its order."""

    def __init__(self, session: SessionLike, after: int, cursor: int, up_to: Optional[int], limit: int,
                 max_bytes: int, names: int) -> None:
        super().__init__()
        self.session, self.since, self.cursor, self.up_to = session, after, cursor, up_to
        self.limit, self.max_bytes, self.names = limit, max_bytes, names
        self.stale = False  # the log cannot say everything since ``cursor``
        self.gone = False  # the session logged out or closed
        self.taken: list[Changed] = []
        self.frames: list[bytes] = []
        self.more = False
        self.queued: Optional[Queued] = None
        self.failure: Optional[BaseException] = None
        self.sent = threading.Event()
        self.sql: Any = None  # chat's feature queries (``changes.features_of``); None: SQLite's

    def apply(self, conn: Any, batch: Batch) -> None:
        user = self.session.user
        if user is None or self.session.closed:
            self.gone = True
            return
        log = self.sql if self.sql is not None else changelog
        if self.up_to is None:
            self.up_to = log.newest(conn)
            if self.since < log.pruned_up_to(conn) or self.since > self.up_to:
                self.stale = True
                return
        assert self.up_to is not None
        changed = self.select(conn, user.casefold(), self.up_to)
        self.more = len(changed) > self.limit
        changed = changed[:self.limit]
        bodies = self.bodies(conn, changed)
        size = 0
        for entry in changed:
            if self.taken and size >= self.max_bytes:
                self.more = True  # the byte budget ends the page: the rest comes next
                break
            self.taken.append(entry)
            for body in bodies.get(entry.message_id, []):  # none: gone with its message (cascade)
                frame = protocol.encode(body)
                self.frames.append(frame)
                size += len(frame)

    def select(self, conn: Any, user_key: str, up_to: int) -> list[Changed]:
        """The page's changed messages (one more than ``limit``, to know whether more exist)."""
        if self.sql is not None:
            return list(self.sql.since(conn, user_key, self.since, up_to, self.limit + 1, self.cursor))
        return changelog.since(conn, user_key, self.since, up_to, self.limit + 1, self.cursor)

    def bodies(self, conn: sqlite3.Connection, changed: list[Changed]) -> dict[int, list[dict[str, Any]]]:
        """The events of each changed message, by message id."""
        ids = [c.message_id for c in changed]
        if self.sql is not None:
            found = self.sql.messages(conn, ids)
            sums = self.sql.reactions(conn, [c.message_id for c in changed if changelog.REACTIONS in c.kinds],
                                      self.names)
            return {c.message_id: frames_of(c, found[c.message_id], sums.get(c.message_id, []))
                    for c in changed if c.message_id in found}
        rows = {m.id: m for m in (_row(r) for r in conn.execute(
            f"SELECT {COLUMNS} FROM messages WHERE id IN ({','.join('?' * len(ids))})", ids))} if ids else {}
        totals = features.reactions(conn, [c.message_id for c in changed if changelog.REACTIONS in c.kinds],
                                    self.names)
        return {c.message_id: frames_of(c, rows[c.message_id], totals.get(c.message_id, []))
                for c in changed if c.message_id in rows}

    def after(self, batch: Batch) -> None:
        try:
            if self.frames:
                self.queued = self._queue()
        finally:
            self.sent.set()

    def failed(self, error: BaseException) -> None:
        self.failure = error
        self.sent.set()

    def _queue(self) -> Queued:
        queued, sizes = Queued(self.session), []
        for index, frame in enumerate(self.frames):
            if not send(self.session, frame):
                break
            sizes.append(len(frame))
            queued.ids.append(index)
        total = sum(sizes)
        for size in sizes:
            total -= size
            queued.behind.append(total)
        return queued


class Replay:
    """Runs the change replay of a session, between its catch-up's messages and ``caught_up``
    (rooms runs its own with its writer and a ``ChangesPage`` of its own: ``page``, ``submit``)."""

    page = ChangesPage

    def __init__(self, backlog: Backlog, actions: "MessageActions",
                 submit: Optional[Callable[[Operation], Operation]] = None) -> None:
        self.backlog, self.actions = backlog, actions
        self.submit = submit if submit is not None else backlog.relay.writer.submit

    def run(self, session: SessionLike, after: int) -> Optional[Outcome]:
        """Send the changes since ``after``; returns (complete, last change id) or None when the
        session went away."""
        paging, settings = self.backlog.paging, self.actions.settings
        cursor, up_to, replayed = max(0, after), None, 0
        while True:
            page = self.page(session, max(0, after), cursor, up_to,
                             max(1, min(paging.messages, settings.changes_max - replayed)), paging.bytes,
                             settings.reaction_names)
            if type(self) is Replay and self.actions.cluster:  # chat's own, on PostgreSQL
                page.sql = pgfeatures
            try:
                self.submit(page)
            except StoreClosed:
                return None
            page.sent.wait()
            if page.failure is not None or page.gone:
                return None if page.gone else (False, after)
            up_to = page.up_to if page.up_to is not None else cursor
            if page.stale:
                return False, up_to
            if page.queued is not None:
                outcome = page.queued.follow(paging.timeout)
                if outcome == "closed":
                    return None
                if outcome == "stalled":
                    return False, up_to
            replayed += len(page.taken)
            if page.taken:
                cursor = page.taken[-1].change_id
            if not page.more:
                return True, up_to
            if replayed >= settings.changes_max:
                return False, up_to
