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
from typing import Optional, Protocol

from chatcore_auth.names import name_key

FILENAME = "accounts.db"
SCHEMA_VERSION = 1  # 1: the ``admin`` flag (server administrators); 0: the first schema, without it
SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name_key      TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created       TEXT NOT NULL,
    updated       TEXT NOT NULL,
    admin         INTEGER NOT NULL DEFAULT 0  -- 1: a server administrator (chatcore user admin)
)
"""


class NewerSchema(RuntimeError):
    """The accounts database was written by a newer chatcore-auth than this one."""


class DuplicateUser(Exception):
    """The username (in any case) is already registered."""


@dataclass(frozen=True)
class Account:
    """One registered user: the name as registered, its password hash, when it was created."""

    username: str
    password_hash: str
    created: str
    admin: bool = False


_COLUMNS = "username, password_hash, created, admin"


def _account(row: tuple[str, str, str, int]) -> Account:
    return Account(row[0], row[1], row[2], bool(row[3]))


def migrate(db: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction (the server and ``chatcore user``
    may open the file at once: the second finds it done). Refuses a newer schema than this
    code knows, rather than guess at it."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise NewerSchema(f"accounts database schema {version} is newer than this chatcore-auth "
                              f"understands ({SCHEMA_VERSION}): upgrade chatcore-auth")
        db.execute(SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(accounts)")}
        if "admin" not in columns:  # schema 0: made before server administrators existed
            db.execute("ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0")
        if version != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def now_text() -> str:
    """Now as the accounts record it: ISO 8601 UTC to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _create_private(path: Path) -> None:
    """Create ``path`` (and its folder) readable by this user only; SQLite gives -wal/-shm the same mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class AccountStorage(Protocol):
    """What the plugin needs of an account store (SQLite here, PostgreSQL in ``pg_store``)."""

    def get(self, username: str) -> Optional[Account]: ...
    def is_admin(self, username: str) -> bool: ...
    def set_admin(self, username: str, admin: bool) -> bool: ...
    def exists(self, username: str) -> bool: ...
    def add(self, username: str, password_hash: str) -> None: ...
    def set_hash(self, username: str, password_hash: str) -> bool: ...
    def remove(self, username: str) -> bool: ...
    def accounts(self) -> list[Account]: ...
    def close(self) -> None: ...


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
        try:
            migrate(self._db)
        except BaseException:
            self._db.close()
            raise

    def get(self, username: str) -> Optional[Account]:
        """The account named ``username`` in any case, or None."""
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM accounts WHERE name_key = ?",
                                   (name_key(username),)).fetchone()
        return _account(row) if row else None

    def is_admin(self, username: str) -> bool:
        """True when ``username`` (any case) is a server administrator."""
        account = self.get(username)
        return account is not None and account.admin

    def set_admin(self, username: str, admin: bool) -> bool:
        """Grant or revoke the administrator flag; False if there is no such user."""
        with self._lock:
            cursor = self._db.execute("UPDATE accounts SET admin = ?, updated = ? WHERE name_key = ?",
                                      (int(admin), now_text(), name_key(username)))
        return cursor.rowcount == 1

    def exists(self, username: str) -> bool:
        """True when ``username`` (any case) is registered."""
        return self.get(username) is not None

    def add(self, username: str, password_hash: str) -> None:
        """Register ``username`` as written; raises DuplicateUser if taken in any case."""
        now = now_text()
        try:
            with self._lock:
                self._db.execute("INSERT INTO accounts (name_key, username, password_hash, created, updated)"
                                 " VALUES (?, ?, ?, ?, ?)",
                                 (name_key(username), username, password_hash, now, now))
        except sqlite3.IntegrityError:
            raise DuplicateUser(username) from None

    def set_hash(self, username: str, password_hash: str) -> bool:
        """Replace the user's password hash; False if there is no such user."""
        with self._lock:
            cursor = self._db.execute("UPDATE accounts SET password_hash = ?, updated = ? WHERE name_key = ?",
                                      (password_hash, now_text(), name_key(username)))
        return cursor.rowcount == 1

    def remove(self, username: str) -> bool:
        """Delete the account; False if there is no such user."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM accounts WHERE name_key = ?", (name_key(username),))
        return cursor.rowcount == 1

    def accounts(self) -> list[Account]:
        """Every account, sorted by name regardless of case."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM accounts ORDER BY name_key").fetchall()
        return [_account(row) for row in rows]

    def close(self) -> None:
        """Checkpoint the WAL and close the file."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass  # another process holds the database; its own close checkpoints
            self._db.close()
