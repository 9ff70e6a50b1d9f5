"""The cluster's PostgreSQL: one connection pool per node, one schema per plugin.

Plugins never share tables: each asks for ``database.schema(name)`` and gets connections whose
``search_path`` is its own schema, plus a migration runner that applies its numbered steps
once, under an advisory lock, so nodes starting together agree. The pool (psycopg_pool)
checks a connection before lending it, so a restarted PostgreSQL costs the callers waiting
at that moment a retry, not the node.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import weakref
from typing import Any, Iterator, Sequence

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from chatcore.cluster.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
MIGRATE_LOCK = 0x63686174  # "chat": the advisory lock every node's migrations take in turn


class Database:
    """A psycopg connection pool on ``url``; ``schema(name)`` hands a plugin its own part."""

    def __init__(self, url: str, min_size: int = 2, max_size: int = 16, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self.pool = ConnectionPool(url, min_size=min_size, max_size=max(min_size, max_size), timeout=timeout,
                                   open=False, check=ConnectionPool.check_connection, name="chatcore",
                                   kwargs={"autocommit": False})
        self._paths: "weakref.WeakKeyDictionary[psycopg.Connection[tuple[Any, ...]], str]" = weakref.WeakKeyDictionary()
        self._paths_lock = threading.Lock()

    def open(self) -> None:
        """Connect (the first ``min_size`` connections) or raise DatabaseUnavailable."""
        try:
            self.pool.open(wait=True, timeout=self.timeout)
        except Exception as error:
            self.pool.close()
            raise DatabaseUnavailable(f"PostgreSQL at {redacted(self.url)} is unreachable: {error}") from error

    def close(self) -> None:
        self.pool.close()

    def schema(self, name: str) -> "Schema":
        """The part of the database that belongs to ``name`` (a plugin's name)."""
        return Schema(self, name)

    @contextlib.contextmanager
    def connection(self, schema: str) -> Iterator["psycopg.Connection[tuple[Any, ...]]"]:
        """A pooled connection in one transaction on ``schema``: committed when the block ends,
        rolled back if it raises. Raises DatabaseUnavailable when none comes within the timeout."""
        try:
            with self.pool.connection(timeout=self.timeout) as conn:
                if self._current_path(conn) != schema:
                    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
                    conn.commit()
                    with self._paths_lock:
                        self._paths[conn] = schema
                yield conn
        except psycopg.OperationalError as error:
            raise DatabaseUnavailable(str(error)) from error
        except Exception as error:
            if type(error).__name__ == "PoolTimeout":
                raise DatabaseUnavailable(f"no PostgreSQL connection within {self.timeout:g} s") from error
            raise

    def _current_path(self, conn: "psycopg.Connection[tuple[Any, ...]]") -> str:
        with self._paths_lock:
            return self._paths.get(conn, "")


class Schema:
    """A plugin's schema: its connections and its migrations."""

    def __init__(self, database: Database, name: str) -> None:
        if not SCHEMA_NAME.match(name):
            raise ValueError(f"{name!r} is not a schema name (lower-case letters, digits, _)")
        self.database = database
        self.name = name

    def connection(self) -> "contextlib.AbstractContextManager[psycopg.Connection[tuple[Any, ...]]]":
        """A pooled connection on this schema, in one transaction (see ``Database.connection``)."""
        return self.database.connection(self.name)

    def version(self) -> int:
        """The schema version applied so far (0 when the schema does not exist yet)."""
        with self.connection() as conn:
            row = conn.execute("SELECT to_regclass('schema_version')").fetchone()
            if row is None or row[0] is None:
                return 0
            version = conn.execute("SELECT version FROM schema_version").fetchone()
            return int(version[0]) if version else 0

    def migrate(self, steps: Sequence[str]) -> int:
        """Apply the steps after the stored version (step ``i`` makes version ``i + 1``) in one
        transaction holding the cluster's migration lock; returns the version reached.
        Refuses a schema newer than ``steps`` knows: an older node must not write to it."""
        with self.database.connection("public") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.name)))
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.schema_version (version integer NOT NULL)").format(
                sql.Identifier(self.name)))
            table = sql.SQL("{}.schema_version").format(sql.Identifier(self.name))
            row = conn.execute(sql.SQL("SELECT version FROM {}").format(table)).fetchone()
            if row is None:
                conn.execute(sql.SQL("INSERT INTO {} VALUES (0)").format(table))
                current = 0
            else:
                current = int(row[0])
            if current > len(steps):
                raise RuntimeError(f"the {self.name} schema is at version {current}, newer than this "
                                   f"chatcore knows ({len(steps)}): upgrade this node")
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self.name)))
            for number in range(current, len(steps)):
                conn.execute(steps[number])
                conn.execute(sql.SQL("UPDATE {} SET version = %s").format(table), (number + 1,))
                log.info("migrated the %s schema to version %d", self.name, number + 1)
            return len(steps)


def redacted(url: str) -> str:
    """``url`` without its password, for logs and errors."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)
