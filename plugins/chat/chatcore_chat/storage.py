"""A message database and the threads around it, as chat and rooms each run one.

``Storage`` starts the single writer, the WAL checkpointer, the scrubber that merges deleted
words out of the search index, the search indexer and the pool of read connections, and stops
them in the order that loses nothing. ``StorageOwner`` lets a service name them directly
(``service.writer``, ``service.readers`` ...), None until its storage is open.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Optional, Union

from chatcore.session import corked
from chatcore_chat.indexer import SearchIndexer
from chatcore_chat.readers import ReaderPool
from chatcore_chat.scrub import Scrubber
from chatcore_chat.store import Checkpointer
from chatcore_chat.writer import Writer


class Storage:
    """The writer on ``conn`` (the database at ``path``) and its helper threads, started."""

    def __init__(self, path: Path, conn: sqlite3.Connection, batch: int, scrub_interval: float,
                 name: str = "chat") -> None:
        self.writer = Writer(conn, batch, followups=corked)
        self.writer.start()
        self.checkpointer = Checkpointer(path, hold_writes=self.writer.paused)
        self.checkpointer.start()
        self.scrubber = Scrubber(path, self.writer.submit, scrub_interval, self.writer.paused, name=f"{name}-scrub")
        self.scrubber.start()
        self.indexer = SearchIndexer(self.writer.submit, name=f"{name}-indexer")
        self.indexer.start()
        self.readers = ReaderPool(path)

    def close(self) -> None:
        """Stop what submits to the writer, then commit what is queued and close the database."""
        self.scrubber.stop()
        self.indexer.stop()
        self.checkpointer.stop()
        self.writer.stop()
        self.readers.close()


class ClusterStorage:
    """Cluster mode: the writer on its own PostgreSQL connection and reads from the core's pool;
    PostgreSQL needs no checkpointer, and search and its index are not there yet."""

    checkpointer = None
    scrubber = None
    indexer = None

    def __init__(self, database: Any, batch: int, schema: str = "chat", lock: Optional[int] = None) -> None:
        """``schema`` and ``lock`` (the writers' advisory lock): chat's unless a plugin (rooms) names its own."""
        from chatcore_chat import pgconnections, pgstore

        self.writer = Writer(pgconnections.PgTransactions(database.url, database.timeout, schema,
                                                          pgstore.WRITE_LOCK if lock is None else lock),
                             batch, followups=corked)
        self.writer.start()
        self.readers = pgconnections.PgReaders(database, schema)

    def close(self) -> None:
        self.writer.stop()


class StorageOwner:
    """A service holding a ``Storage`` once it is open."""

    storage: Optional[Union[Storage, ClusterStorage]] = None

    @property
    def writer(self) -> Optional[Writer]:
        return self.storage.writer if self.storage is not None else None

    @property
    def checkpointer(self) -> Optional[Checkpointer]:
        return self.storage.checkpointer if self.storage is not None else None

    @property
    def scrubber(self) -> Optional[Scrubber]:
        return self.storage.scrubber if self.storage is not None else None

    @property
    def indexer(self) -> Optional[SearchIndexer]:
        return self.storage.indexer if self.storage is not None else None

    @property
    def readers(self) -> Optional[ReaderPool]:
        """SQLite's pool, or cluster mode's ``PgReaders`` (the same ``connection()``)."""
        return self.storage.readers if self.storage is not None else None  # type: ignore[return-value]
