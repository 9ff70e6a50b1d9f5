"""The chat store's single writer: queued operations run in batched transactions, then their follow-ups.

Every change to the chat database goes through here, so SQLite sees one writer and ids are
assigned in one order. One executor at a time takes what is queued (up to ``batch``
operations), runs each one's ``apply`` inside one transaction (one that fails is undone
alone and the others still commit, see ``_transaction``), commits, and only then runs
each one's ``after`` (or, for one that failed, its ``failed``) in queue order (delivery,
acknowledgement). When nothing is queued or running, ``submit`` runs the operation at once
in the caller's thread, so a lone message costs no hand-off to another thread; otherwise it
queues and the writer thread takes it in the next batch, so under load batches grow by
themselves. A lone operation that runs one statement (``one_statement``, a message's insert)
needs no BEGIN and COMMIT around it on SQLite: the statement is its own transaction. No
pluggy, no sessions: operations bring their own logic.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sqlite3
import threading
from typing import Any, Callable, ContextManager, Iterator, Optional

from chatcore_chat.faults import Refused, Throttled, database_unreachable, storage_full

log = logging.getLogger(__name__)


class StoreClosed(RuntimeError):
    """The writer has stopped; nothing more can be stored."""


class Operation:
    """One unit of work for the writer; subclasses override ``apply`` and ``after``."""

    one_statement = False  # apply runs exactly one statement (a lone one then needs no BEGIN/COMMIT)

    def __init__(self) -> None:
        self._done: Optional[threading.Event] = None  # made only if someone waits (most never do)
        self._finished = False
        self.error: Optional[BaseException] = None
        self.result: Any = None

    def apply(self, conn: sqlite3.Connection, batch: "Batch") -> None:
        """Run inside the batch's transaction (before commit); store what ``after`` needs.

        Raising makes this operation fail and undoes its changes alone; raise ``Refused`` only
        before changing anything. ``apply`` may run again in a new transaction (when another
        operation of its batch failed), so keep it free of effects beyond the database and
        ``batch.scratch``, and change the scratch only after the last statement that may fail.
        """

    def after(self, batch: "Batch") -> None:
        """Run after the batch committed, in queue order (never while holding a lock)."""

    def failed(self, error: BaseException) -> None:
        """``apply`` raised, or the whole batch rolled back: this operation's changes are gone;
        answer or clean up without retrying. Runs among the batch's follow-ups, in queue order."""

    def finish(self, error: Optional[BaseException] = None) -> None:
        """Record the outcome and wake whoever waits for it."""
        self.error = error
        with _waiting:
            self._finished = True
            done = self._done
        if done is not None:
            done.set()

    def wait(self, timeout: Optional[float] = None) -> Any:
        """Block until committed; returns ``result`` or raises what went wrong."""
        with _waiting:
            if not self._finished and self._done is None:
                self._done = threading.Event()
            done = self._done
        if done is not None and not done.wait(timeout):
            raise TimeoutError("the chat store did not commit in time")
        if self.error is not None:
            raise self.error
        return self.result


_waiting = threading.Lock()  # orders an operation's finish against a waiter creating its Event


class Batch:
    """What operations of one transaction share: scratch space keyed by the operations' own logic."""

    def __init__(self) -> None:
        self.scratch: dict[Any, Any] = {}


class SqliteTransactions:
    """How the writer begins, guards and ends a transaction on an SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._changes = 0

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def begin(self) -> None:
        self._changes = self.conn.total_changes
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> bool:
        """Commit; True when the transaction wrote something."""
        self.conn.execute("COMMIT")
        return self.conn.total_changes > self._changes

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def savepoint(self) -> None:
        self.conn.execute("SAVEPOINT op")

    def rollback_savepoint(self) -> None:
        self.conn.execute("ROLLBACK TO op")

    def release(self) -> None:
        self.conn.execute("RELEASE op")

    def close(self) -> None:
        self.conn.close()


class Writer(threading.Thread):
    """Owns the writing connection; operations are submitted from any thread. ``conn`` is an
    SQLite connection or any object with ``SqliteTransactions``' methods (chat's PostgreSQL
    store passes one, ``pgconnections.PgTransactions``)."""

    def __init__(self, conn: Any, batch: int = 100,
                 followups: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
                 max_queued: int = 0) -> None:
        super().__init__(name="chat-writer", daemon=True)
        self._tx = SqliteTransactions(conn) if isinstance(conn, sqlite3.Connection) else conn
        self._batch = max(1, batch)
        self._followups = followups  # wraps a batch's follow-ups (the service corks sends there)
        self._max_queued = max_queued or 4 * self._batch
        self._pending: "collections.deque[Operation]" = collections.deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # work queued or the executor freed
        self._room = threading.Condition(self._lock)  # the queue shrank below max_queued
        self._busy = False  # an executor (this thread or a submitter) is running a batch
        self._pausing = False  # paused() waits for the executor: nobody may start a batch
        self._closed = False
        self.commits = 0  # transactions committed (diagnostics, benchmark)
        self.full = Throttled(log, "chat storage is full: writes refused (answered storage_full)",
                              "chat storage accepts writes again")
        self.down = Throttled(log, "chat database unreachable: writes refused (answered unavailable)",
                              "chat database reachable again")

    @property
    def queued(self) -> int:
        """Operations waiting for the next batch (the metrics read it)."""
        return len(self._pending)

    def submit(self, op: Operation, wait: Optional[float] = None, inline: bool = True) -> Operation:
        """Run ``op`` now in this thread if the store is idle (and ``inline``), else queue it
        for the next batch; raises StoreClosed after ``stop``. A connection whose client has
        more requests waiting passes ``inline=False``: it goes on reading while the writer
        thread commits, and its messages batch (one pipelining sender: 6,059 msg/s inline,
        7,921 queued, ``./dev bench chat_relay``).

        With ``wait``, a caller finding ``max_queued`` operations already queued waits up to
        that many seconds for room (TimeoutError after). Connection threads pass it: parked
        on a condition they leave the GIL to the executor, so an overloaded server keeps
        committing at full speed instead of starving its one writer among hundreds of
        runnable threads. Follow-ups never pass it (the executor must not wait on itself).
        """
        with self._changed:
            if self._closed:
                raise StoreClosed("the chat store is closed")
            if wait is not None and len(self._pending) >= self._max_queued:
                if not self._room.wait_for(lambda: self._closed or len(self._pending) < self._max_queued, wait):
                    raise TimeoutError("the chat store is overloaded")
                if self._closed:
                    raise StoreClosed("the chat store is closed")
            if self._busy or self._pending or self._pausing or not inline:
                self._pending.append(op)
                if not self._busy:  # a running batch wakes the writer thread when it ends
                    self._changed.notify()
                return op
            self._busy = True
        self._execute([op])
        return op

    def run(self) -> None:
        """Run queued batches until ``stop``; what is queued by then still runs."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: not self._busy and not self._pausing and (self._pending or self._closed))
                if not self._pending:
                    return
                ops = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
                self._busy = True
                self._room.notify(len(ops))
            self._execute(ops)

    def _execute(self, ops: list[Operation]) -> None:
        """Run one batch as the executor, then let the next one (queued work) go."""
        try:
            self._run_batch(ops)
        finally:
            with self._changed:
                self._busy = False
                if self._pending or self._pausing or self._closed:  # else nobody waits for this:
                    self._changed.notify_all()  # the writer thread has work, paused() or stop() waits

    def _run_batch(self, ops: list[Operation]) -> None:
        """One transaction for ``ops``; then each one's follow-up (``after`` or ``failed``) in order."""
        errors: dict[Operation, BaseException] = {}
        try:
            batch = self._transaction(ops, errors)
        except Exception as exc:  # BEGIN, a rollback to a savepoint or COMMIT failed: the batch did
            failing = [op for op in ops if op not in errors]
            self._report(exc, f"chat store transaction of {len(ops)} operation(s)", len(failing))
            try:
                self._tx.rollback()
            except Exception:
                pass
            batch = Batch()
            errors.update((op, exc) for op in failing)
        for op in ops:
            if op not in errors:
                op.finish()
        with self._followups():
            for op in ops:
                error = errors.get(op)
                try:
                    if error is None:
                        op.after(batch)
                    else:
                        op.failed(error)
                except Exception:  # one bad follow-up never skips the others
                    log.exception("follow-up of %s failed", type(op).__name__)
                if error is not None:
                    op.finish(error)

    def _transaction(self, ops: list[Operation], errors: dict[Operation, BaseException]) -> Batch:
        """Apply and commit every operation not in ``errors``; one that raises is recorded there
        and the others commit.

        Failures are rare, so the first round runs without savepoints: one that fails rolls the
        round back, and the others run again in a new transaction, each under its own savepoint
        (a second failure is then undone alone). ``Refused`` needs neither: an operation raises
        it only when it changed nothing. Should SQLite roll the whole transaction back itself
        (it may after a full disk), the rest run again too; each round drops at least one
        operation, and a lone operation needs no savepoint at all.
        """
        guarded = False
        tx = self._tx
        while True:
            batch = Batch()
            todo = [op for op in ops if op not in errors]
            if not todo:
                return batch
            savepoints = guarded and len(todo) > 1
            if len(todo) == 1 and todo[0].one_statement and isinstance(tx, SqliteTransactions):
                self._autocommit(todo[0], batch, errors)
                return batch
            tx.begin()
            for op in todo:
                if savepoints:
                    tx.savepoint()
                try:
                    op.apply(tx.conn, batch)
                except Refused as exc:
                    errors[op] = exc
                except Exception as exc:
                    errors[op] = exc
                    self._report(exc, f"chat store operation {type(op).__name__}", 1)
                    if not (savepoints and tx.in_transaction):
                        if tx.in_transaction:
                            tx.rollback()
                        guarded = True
                        break  # run the others again, in a new transaction
                    tx.rollback_savepoint()
                if savepoints:
                    tx.release()
            else:
                self._committed(tx.commit())
                return batch

    def _autocommit(self, op: Operation, batch: Batch, errors: dict[Operation, BaseException]) -> None:
        """A lone one-statement operation is its own transaction: SQLite begins and commits it
        inside the statement (and undoes it if the statement fails), sparing two statements and
        their GIL hand-offs."""
        before = self._tx.conn.total_changes
        try:
            op.apply(self._tx.conn, batch)
        except Exception as exc:
            errors[op] = exc
            self._report(exc, f"chat store operation {type(op).__name__}", 1)
            return
        self._committed(self._tx.conn.total_changes > before)

    def _committed(self, wrote: bool) -> None:
        """Count a commit; a write that went through ends a full disk's or an outage's refusals."""
        self.commits += 1
        if self.full.active and wrote:
            self.full.over()
        if self.down.active:
            self.down.over()

    def _report(self, error: BaseException, what: str, count: int) -> None:
        """Log a failure by its kind: refusals not at all, a full disk throttled, the rest in full."""
        if isinstance(error, Refused):
            return
        if storage_full(error):
            self.full.note(count, error)
            return
        if database_unreachable(error):
            self.down.note(count, error)
            return
        log.error("%s failed", what, exc_info=error)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold every write back for the block (the running batch finishes first); what is
        submitted meanwhile queues. The checkpointer's final catch-up runs here, so it never
        meets the writer inside SQLite, whose busy handler would sleep for milliseconds."""
        with self._changed:
            self._pausing = True
            try:
                self._changed.wait_for(lambda: not self._busy)
            finally:
                self._pausing = False
            self._busy = True
        try:
            yield
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()

    def stop(self) -> None:
        """Finish what is queued or running, end the thread and close the connection; later
        submits raise StoreClosed."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._changed.notify()
            self._room.notify_all()
        if self.is_alive():
            self.join()
        with self._changed:  # a submitter's batch may still be running
            self._changed.wait_for(lambda: not self._busy)
        self._tx.close()
