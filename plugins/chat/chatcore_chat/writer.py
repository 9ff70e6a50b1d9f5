"""The single writer thread: runs queued operations in batched transactions, then their follow-ups.

Every change to the chat database goes through here, so SQLite sees one writer and ids are
assigned in one order. The thread takes what is queued (up to ``batch`` operations), runs each
one's ``apply`` inside one transaction, commits, and only then runs each one's ``after`` in
queue order (delivery, acknowledgement). Under load, batches grow by themselves; when idle,
a lone operation commits at once. No pluggy, no sessions: operations bring their own logic.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
from typing import Any, Callable, ContextManager, Optional

log = logging.getLogger(__name__)


class StoreClosed(RuntimeError):
    """The writer has stopped; nothing more can be stored."""


class Operation:
    """One unit of work for the writer; subclasses override ``apply`` and ``after``."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.error: Optional[BaseException] = None
        self.result: Any = None

    def apply(self, conn: sqlite3.Connection, batch: "Batch") -> None:
        """Run inside the batch's transaction (before commit); store what ``after`` needs."""

    def after(self, batch: "Batch") -> None:
        """Run after the batch committed, in queue order (never while holding a lock)."""

    def failed(self, error: BaseException) -> None:
        """The batch rolled back: ``apply``'s changes are gone; clean up without retrying."""

    def finish(self, error: Optional[BaseException] = None) -> None:
        """Record the outcome and wake whoever waits for it."""
        self.error = error
        self._done.set()

    def wait(self, timeout: Optional[float] = None) -> Any:
        """Block until committed; returns ``result`` or raises what went wrong."""
        if not self._done.wait(timeout):
            raise TimeoutError("the chat store did not commit in time")
        if self.error is not None:
            raise self.error
        return self.result


class Batch:
    """What operations of one transaction share: scratch space keyed by the operations' own logic."""

    def __init__(self) -> None:
        self.scratch: dict[Any, Any] = {}


class Writer(threading.Thread):
    """Owns the writing connection; operations are submitted from any thread."""

    def __init__(self, conn: sqlite3.Connection, batch: int = 100,
                 followups: Callable[[], ContextManager[Any]] = contextlib.nullcontext) -> None:
        super().__init__(name="chat-writer", daemon=True)
        self._conn = conn
        self._batch = max(1, batch)
        self._followups = followups  # wraps a batch's follow-ups (the service corks sends there)
        self._queue: "queue.Queue[Optional[Operation]]" = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self.commits = 0  # transactions committed (diagnostics, benchmark)

    def submit(self, op: Operation) -> Operation:
        """Queue ``op``; raises StoreClosed after ``stop``."""
        with self._lock:
            if self._closed:
                raise StoreClosed("the chat store is closed")
            self._queue.put(op)
        return op

    def run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            ops = [first]
            while len(ops) < self._batch:
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    break
                if op is None:
                    stopping = True
                    break
                ops.append(op)
            self._run_batch(ops)

    def _run_batch(self, ops: list[Operation]) -> None:
        batch = Batch()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                op.apply(self._conn, batch)
            self._conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:  # roll back the whole batch; every operation in it fails
            log.exception("chat store transaction of %d operation(s) failed", len(ops))
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for op in ops:
                try:
                    op.failed(exc)
                except Exception:
                    log.exception("cleanup of failed %s failed", type(op).__name__)
                op.finish(exc)
            return
        for op in ops:
            op.finish()
        with self._followups():
            for op in ops:
                try:
                    op.after(batch)
                except Exception:  # one bad follow-up never skips the others
                    log.exception("follow-up of %s failed", type(op).__name__)

    def stop(self) -> None:
        """Finish what is queued, end the thread and close the connection; later submits raise StoreClosed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self.is_alive():
            self.join()
        self._conn.close()
