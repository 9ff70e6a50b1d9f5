"""Retention: forget messages older than a maximum age or beyond a maximum count per conversation.

A sweep finds candidates on a read connection (WAL readers never block the writer) and
deletes them in small chunks through the writer queue, waiting for each chunk, so chat
writes interleave with a large clean-up instead of queueing behind it. Which rows are
candidates and how they are deleted are the store's (``RetentionQueries``; chat's own
``store`` by default), so the rooms plugin applies the same policy to its own database.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Sequence

from chatcore_chat import store
from chatcore_chat.delivery import Delete
from chatcore_chat.store import ReaderPool
from chatcore_chat.writer import Operation, StoreClosed

log = logging.getLogger(__name__)
CHUNK = 500  # rows deleted per writer operation


class RetentionQueries(Protocol):
    """What a sweep asks of a store; ``conversation`` is the store's key (chat's ``conv``, a room's id)."""

    def older_than(self, conn: Any, cutoff_ms: int, limit: int) -> list[int]: ...
    def over_count(self, conn: Any, keep: int) -> Sequence[Any]: ...
    def beyond_newest(self, conn: Any, conversation: Any, keep: int, limit: int) -> list[int]: ...


@dataclass(frozen=True)
class RetentionPolicy:
    """What to keep; zero means no limit of that kind (the default keeps everything)."""

    max_age_days: float = 0.0
    max_count: int = 0

    @property
    def active(self) -> bool:
        return self.max_age_days > 0 or self.max_count > 0


class Retention:
    """Applies a policy on demand (``sweep``) and, once started, every ``interval`` seconds."""

    def __init__(self, policy: RetentionPolicy, readers: ReaderPool, submit: Callable[[Operation], Operation],
                 clock: Callable[[], float], interval: float, queries: Any = store,
                 delete: Callable[[list[int]], Operation] = Delete, name: str = "chat-retention",
                 turn: Callable[[], bool] = lambda: True) -> None:
        """``queries`` (a ``RetentionQueries``) finds message ids, ``delete`` makes the writer
        operation deleting them (its ``result``: how many went); the background sweeps run only
        while ``turn()`` says so (in a cluster, one node's turn: the others' would find nothing)."""
        self._turn = turn
        self.policy = policy
        self._queries: RetentionQueries = queries
        self._delete = delete
        self._name = name
        self._readers = readers
        self._submit = submit
        self._clock = clock
        self._interval = interval
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._sweeping = threading.Lock()

    def start(self) -> None:
        """Sweep in the background, first right away; nothing runs when the policy keeps all."""
        if self.policy.active and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop between chunks and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._turn():
                    self.sweep()
            except StoreClosed:
                return
            except Exception:
                log.exception("%s sweep failed; retrying in %g s", self._name, self._interval)
            self._stop.wait(self._interval)

    def sweep(self) -> int:
        """Apply the policy once; returns how many messages were deleted."""
        with self._sweeping:
            deleted = 0
            if self.policy.max_age_days > 0:
                cutoff = int((self._clock() - self.policy.max_age_days * 86400) * 1000)
                deleted += self._drain(lambda conn: self._queries.older_than(conn, cutoff, CHUNK))
            if self.policy.max_count > 0:
                with self._readers.connection() as conn:
                    conversations = self._queries.over_count(conn, self.policy.max_count)
                keep = self.policy.max_count
                for conv in conversations:
                    deleted += self._drain(lambda conn, conv=conv: self._queries.beyond_newest(conn, conv, keep, CHUNK))
            if deleted:
                log.info("%s deleted %d message(s)", self._name, deleted)
            return deleted

    def _drain(self, find: Callable[..., list[int]]) -> int:
        """Delete what ``find`` returns, chunk by chunk, until it returns nothing."""
        deleted = 0
        while not self._stop.is_set():
            with self._readers.connection() as conn:
                ids = find(conn)
            if not ids:
                break
            deleted += int(self._submit(self._delete(ids)).wait() or 0)
        return deleted
