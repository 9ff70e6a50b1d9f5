"""Accounts in SQLite (WAL): one row per user, keyed case-insensitively, hash only.

The server and ``chatcore user`` may use the file at the same time: WAL gives readers a
consistent snapshot and ``busy_timeout`` makes a writer wait for the other instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from chatcore_auth.names import name_key

FILENAME = "accounts.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name_key      TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created       TEXT NOT NULL,
    updated       TEXT NOT NULL
)
"""


class DuplicateUser(Exception):
    """The username (in any case) is already registered."""


@dataclass(frozen=True)
class Account:
    """One registered user: the name as registered, its password hash, when it was created."""

    username: str
    password_hash: str
    created: str


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _create_private(path: Path) -> None:
    """Create ``path`` (and its folder) readable by this user only; SQLite gives -wal/-shm the same mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class AccountStore:
    """The accounts table; every method is thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        _create_private(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA secure_delete=ON")  # replaced hashes do not linger in free pages
        self._db.execute(SCHEMA)

    def get(self, username: str) -> Optional[Account]:
        """The account named ``username`` in any case, or None."""
        with self._lock:
            row = self._db.execute("SELECT username, password_hash, created FROM accounts WHERE name_key = ?",
                                   (name_key(username),)).fetchone()
        return Account(*row) if row else None

    def exists(self, username: str) -> bool:
        """True when ``username`` (any case) is registered."""
        return self.get(username) is not None

    def add(self, username: str, password_hash: str) -> None:
        """Register ``username`` as written; raises DuplicateUser if taken in any case."""
        now = _now()
        try:
            with self._lock:
                self._db.execute("INSERT INTO accounts VALUES (?, ?, ?, ?, ?)",
                                 (name_key(username), username, password_hash, now, now))
        except sqlite3.IntegrityError:
            raise DuplicateUser(username) from None

    def set_hash(self, username: str, password_hash: str) -> bool:
        """Replace the user's password hash; False if there is no such user."""
        with self._lock:
            cursor = self._db.execute("UPDATE accounts SET password_hash = ?, updated = ? WHERE name_key = ?",
                                      (password_hash, _now(), name_key(username)))
        return cursor.rowcount == 1

    def remove(self, username: str) -> bool:
        """Delete the account; False if there is no such user."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM accounts WHERE name_key = ?", (name_key(username),))
        return cursor.rowcount == 1

    def accounts(self) -> list[Account]:
        """Every account, sorted by name regardless of case."""
        with self._lock:
            rows = self._db.execute("SELECT username, password_hash, created FROM accounts ORDER BY name_key").fetchall()
        return [Account(*row) for row in rows]

    def close(self) -> None:
        """Checkpoint the WAL and close the file."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass  # another process holds the database; its own close checkpoints
            self._db.close()
