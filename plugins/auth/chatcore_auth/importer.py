"""``chatcore import-sqlite`` for the accounts: every account and device token of a single
node's ``<data>/auth/accounts.db`` copied into the cluster's ``auth`` schema as it was (the
hashes, flags and times; device tokens keep working), refusing a schema that holds any."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatcore_auth import NAME
from chatcore_auth.store import FILENAME

if TYPE_CHECKING:
    from chatcore.cluster import Database

ACCOUNT_COLUMNS = ("name_key", "username", "password_hash", "created", "updated", "admin")
DEVICE_COLUMNS = ("token_hash", "name_key", "device", "created", "last_used", "last_address", "revoked", "why")


class NotEmpty(RuntimeError):
    """The cluster's ``auth`` schema already holds accounts or devices."""


def _rows(db: sqlite3.Connection, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Every row of ``table`` (none if it does not exist); a column the file predates reads as its default."""
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if not present:
        return []
    defaults = {"admin": "0", "why": "''", "revoked": "NULL"}
    chosen = ", ".join(c if c in present else defaults[c] for c in columns)
    return db.execute(f"SELECT {chosen} FROM {table}").fetchall()


def import_sqlite(data_dir: Path, database: "Database") -> tuple[int, int]:
    """Copy the accounts and devices; (accounts, devices) copied. Nothing to do without the file."""
    path = data_dir / NAME / FILENAME
    if not path.is_file():
        return 0, 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        accounts = _rows(db, "accounts", ACCOUNT_COLUMNS)
        devices = _rows(db, "devices", DEVICE_COLUMNS)
    finally:
        db.close()
    with database.schema(NAME).connection() as conn:
        conn.execute("LOCK TABLE accounts, devices IN EXCLUSIVE MODE")
        held = conn.execute("SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM devices)").fetchone()
        if held and held[0]:
            raise NotEmpty(f"the cluster's auth schema already holds {held[0]} accounts and devices: "
                           "import-sqlite copies into an empty cluster only")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO accounts (name_key, username, password_hash, created, updated, admin)"
                               " VALUES (%s, %s, %s, %s, %s, %s)",
                               [(*row[:5], bool(row[5])) for row in accounts])
            cursor.executemany("INSERT INTO devices (token_hash, name_key, device, created, last_used,"
                               " last_address, revoked, why) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", devices)
    return len(accounts), len(devices)
