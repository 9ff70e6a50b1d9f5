"""The connections chat's PostgreSQL store runs on: the writer's own (``PgTransactions``,
with the cluster's write lock taken at a transaction's first statement) and the readers' (the
core's pool, ``PgReaders``). Rooms runs the same classes on its own schema and lock."""

from __future__ import annotations

from typing import Any, Optional

import psycopg
from psycopg.pq import TransactionStatus

from chatcore_chat.pgstore import SCHEMA, WRITE_LOCK


class PgTransactions:
    """The writer's own PostgreSQL connection (not the pool's: it is held for the node's life),
    reconnected at the next batch after PostgreSQL went away.

    The cluster-wide write lock is taken by a transaction's first statement, not at ``begin``:
    a batch that only delivers what another node committed runs no statement at all, so it
    neither waits for the lock nor holds it from the nodes that are writing."""

    def __init__(self, url: str, timeout: float = 10.0, schema: str = SCHEMA, lock: int = WRITE_LOCK) -> None:
        """``schema`` and ``lock``: chat's by default; another plugin's store (rooms) names its own."""
        self.url, self.timeout, self.schema, self.lock = url, timeout, schema, lock
        self._conn: Optional[psycopg.Connection[Any]] = None
        self._locked = False
        self.conn = _LockOnFirstUse(self)  # what operations are given

    def raw(self) -> "psycopg.Connection[Any]":
        """The connection itself (opened again if PostgreSQL dropped it)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._locked = False
            self._conn = psycopg.connect(self.url, autocommit=False, connect_timeout=max(1, int(self.timeout)),
                                         options=f"-c search_path={self.schema}")
        return self._conn

    def locked(self) -> "psycopg.Connection[Any]":
        """The connection, inside a transaction that holds the write lock."""
        conn = self.raw()
        if not self._locked or conn.info.transaction_status == TransactionStatus.IDLE:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock,))
            self._locked = True
        return conn

    @property
    def in_transaction(self) -> bool:
        conn = self._conn
        return conn is not None and not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE

    def begin(self) -> None:
        self._locked = False

    def commit(self) -> bool:
        if self._conn is not None and self.in_transaction:
            self._conn.commit()
        self._locked = False
        return True

    def rollback(self) -> None:
        self._locked = False
        if self._conn is not None and not self._conn.closed:
            self._conn.rollback()

    def savepoint(self) -> None:
        self.locked().execute("SAVEPOINT op")  # the lock first: one taken inside it would go with its rollback

    def rollback_savepoint(self) -> None:
        self.raw().execute("ROLLBACK TO SAVEPOINT op")

    def release(self) -> None:
        self.raw().execute("RELEASE SAVEPOINT op")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class _LockOnFirstUse:
    """The writer's connection as operations see it: ``execute`` takes the write lock first."""

    def __init__(self, transactions: PgTransactions) -> None:
        self._transactions = transactions

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        return self._transactions.locked().execute(query, params, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transactions.locked(), name)


class PgReaders:
    """The ``ReaderPool`` interface over the cluster's pool: connections on the ``chat`` schema."""

    def __init__(self, database: Any, schema: str = SCHEMA) -> None:
        self._schema = database.schema(schema)

    def connection(self) -> Any:
        return self._schema.connection()

    def close(self) -> None:
        """The pool belongs to the core."""
