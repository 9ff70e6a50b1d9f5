"""Pooled read-only connections to an SQLite database in WAL mode (chat's and rooms' stores)."""

from __future__ import annotations

import queue
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class ReaderPool:
    """A few read-only connections shared by the workers serving requests (WAL readers never block the writer)."""

    def __init__(self, path: Path, size: int = 4) -> None:
        self._path = path
        self._idle: "queue.LifoQueue[sqlite3.Connection]" = queue.LifoQueue()
        self._slots = queue.Queue(maxsize=size)  # type: queue.Queue[None]
        self._all: list[sqlite3.Connection] = []
        for _ in range(size):
            self._slots.put(None)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a connection (opened on first use), waiting while all are busy."""
        self._slots.get()
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, isolation_level=None,
                                       check_same_thread=False, timeout=30.0)
                self._all.append(conn)
            try:
                yield conn
            finally:
                self._idle.put(conn)
        finally:
            self._slots.put(None)

    def close(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
