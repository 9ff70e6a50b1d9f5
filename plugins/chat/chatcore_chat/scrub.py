"""Erasing a redacted message's words from the search index too.

A redaction blanks the row (``secure_delete`` overwrites the old bytes) and the trigger takes
the message out of the FTS5 index at once, so no search finds it. But FTS5 before SQLite 3.42
records a deletion as a marker next to the old entry, and both keep the words in the index's
pages until their segments are merged. So after a redaction a ``Scrubber`` asks the writer to
merge the whole index (``optimize``), at most once per ``interval`` seconds however many
redactions came, and then truncates the WAL (its old frames still hold the pages as they
were; writes are held for that moment, as ``Checkpointer`` does): the words are gone from
the files within that time. SQLite 3.42 and later
delete index entries in place (``secure-delete``, set by ``features.add_features``) and need
no scrub; it still runs, cheaply.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, ContextManager

from chatcore_chat.writer import Batch, Operation, StoreClosed

log = logging.getLogger(__name__)


class Optimize(Operation):
    """Merge every segment of the search index into one, dropping deleted entries' words."""

    def apply(self, conn: sqlite3.Connection, batch: Batch) -> None:
        conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")


class Scrubber(threading.Thread):
    """Runs ``Optimize`` through ``submit`` ``interval`` s after the first redaction not yet scrubbed."""

    def __init__(self, path: Path, submit: Callable[[Operation], Operation], interval: float,
                 hold_writes: Callable[[], ContextManager[Any]] = nullcontext, name: str = "chat-scrub") -> None:
        super().__init__(name=name, daemon=True)
        self._path, self._submit, self.interval, self._hold_writes = path, submit, interval, hold_writes
        self._wake = threading.Condition()
        self._due = False
        self._stopping = False
        self.scrubs = 0  # index merges committed (tests, diagnostics)

    def redacted(self) -> None:
        """A redaction committed: scrub within ``interval``."""
        with self._wake:
            self._due = True
            self._wake.notify_all()

    def run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._due or self._stopping)
                if self._stopping:
                    return
                if self.interval > 0 and self._wake.wait_for(lambda: self._stopping, self.interval):
                    return
                self._due = False
            try:
                self._submit(Optimize()).wait()
                self._truncate_wal()
            except StoreClosed:
                return
            except Exception:
                log.exception("merging the search index after a redaction failed; the next redaction tries again")
                continue
            with self._wake:
                self.scrubs += 1
                self._wake.notify_all()

    def _truncate_wal(self) -> None:
        """Copy the WAL back and cut it to nothing; a reader still in it makes this a no-op
        (logged), and the WAL's next start-over overwrites the frames instead."""
        conn = sqlite3.connect(str(self._path), isolation_level=None, timeout=5.0)
        try:
            with self._hold_writes():
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if busy:
                log.info("the WAL could not be truncated after a redaction (a reader was in it)")
        finally:
            conn.close()

    def wait_scrubbed(self, count: int, timeout: float) -> bool:
        """Until ``count`` scrubs committed (tests)."""
        with self._wake:
            return self._wake.wait_for(lambda: self.scrubs >= count, timeout)

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self.is_alive():
            self.join()
