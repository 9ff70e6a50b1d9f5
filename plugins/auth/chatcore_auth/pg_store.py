"""Accounts and device tokens in the cluster's PostgreSQL (the ``auth`` schema): the same
interface as ``store.AccountStore`` and ``devices.DeviceTokens``, so the plugin's logic is one.

Every node shares these tables. A name is unique by its ``name_key`` (casefolded, as in
SQLite): two nodes registering the same name race on the primary key and exactly one insert
wins; the other gets ``DuplicateUser``. Each method is one pooled transaction.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

from chatcore_auth.devices import Clock, Device, TokenCheck, digest, new_token, refusal_for
from chatcore_auth.names import name_key
from chatcore_auth.store import Account, DuplicateUser, now_text

if TYPE_CHECKING:
    from chatcore.cluster import Schema

# Step i makes schema version i + 1 (chatcore.cluster.Schema.migrate); never edit a step, add one.
MIGRATIONS = [
    """
    CREATE TABLE accounts (
        name_key      text PRIMARY KEY,
        username      text NOT NULL,
        password_hash text NOT NULL,
        created       text NOT NULL,
        updated       text NOT NULL,
        admin         boolean NOT NULL DEFAULT false
    );
    CREATE TABLE devices (
        token_hash   text PRIMARY KEY,
        name_key     text NOT NULL,
        device       text NOT NULL,
        created      double precision NOT NULL,
        last_used    double precision NOT NULL,
        last_address text NOT NULL,
        revoked      double precision,
        why          text NOT NULL DEFAULT ''
    );
    CREATE INDEX devices_by_user ON devices (name_key, device);
    """,
]
_COLUMNS = "username, password_hash, created, admin"


class PgAccountStore:
    """The ``accounts`` table of the ``auth`` schema; thread-safe (a connection per call)."""

    def __init__(self, schema: "Schema") -> None:
        self.schema = schema

    def get(self, username: str) -> Optional[Account]:
        """The account named ``username`` in any case, or None."""
        with self.schema.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE name_key = %s",
                               (name_key(username),)).fetchone()
        return Account(row[0], row[1], row[2], bool(row[3])) if row else None

    def is_admin(self, username: str) -> bool:
        account = self.get(username)
        return account is not None and account.admin

    def set_admin(self, username: str, admin: bool) -> bool:
        with self.schema.connection() as conn:
            cursor = conn.execute("UPDATE accounts SET admin = %s, updated = %s WHERE name_key = %s",
                                  (admin, now_text(), name_key(username)))
        return cursor.rowcount == 1

    def exists(self, username: str) -> bool:
        return self.get(username) is not None

    def add(self, username: str, password_hash: str) -> None:
        """Register ``username``; raises DuplicateUser if taken in any case (on any node)."""
        now = now_text()
        with self.schema.connection() as conn:
            cursor = conn.execute("INSERT INTO accounts (name_key, username, password_hash, created, updated)"
                                  " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name_key) DO NOTHING",
                                  (name_key(username), username, password_hash, now, now))
        if cursor.rowcount != 1:
            raise DuplicateUser(username)

    def set_hash(self, username: str, password_hash: str) -> bool:
        with self.schema.connection() as conn:
            cursor = conn.execute("UPDATE accounts SET password_hash = %s, updated = %s WHERE name_key = %s",
                                  (password_hash, now_text(), name_key(username)))
        return cursor.rowcount == 1

    def remove(self, username: str) -> bool:
        with self.schema.connection() as conn:
            cursor = conn.execute("DELETE FROM accounts WHERE name_key = %s", (name_key(username),))
        return cursor.rowcount == 1

    def accounts(self) -> list[Account]:
        """Every account, sorted by name regardless of case."""
        with self.schema.connection() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM accounts ORDER BY name_key COLLATE \"C\"").fetchall()
        return [Account(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def close(self) -> None:
        """Nothing of its own to close: the pool is the cluster's."""


class PgDeviceTokens:
    """The ``devices`` table of the ``auth`` schema; the rules of ``devices.DeviceTokens``."""

    def __init__(self, schema: "Schema", ttl: float, clock: Clock = time.time) -> None:
        self.schema, self.ttl, self._clock = schema, ttl, clock

    def close(self) -> None:
        """Nothing of its own to close: the pool is the cluster's."""

    def issue(self, username: str, device: str, address: str) -> str:
        """A new token for ``device`` of ``username``; an earlier token of that device stops
        working. The user's account row is locked meanwhile, so two nodes issuing for one device
        at once leave one valid token."""
        token = new_token()
        now, key = self._clock(), name_key(username)
        with self.schema.connection() as conn:
            conn.execute("SELECT 1 FROM accounts WHERE name_key = %s FOR UPDATE", (key,))
            conn.execute("UPDATE devices SET revoked = %s, why = 'replaced' WHERE name_key = %s AND device = %s"
                         " AND revoked IS NULL", (now, key, device))
            conn.execute("INSERT INTO devices (token_hash, name_key, device, created, last_used, last_address)"
                         " VALUES (%s, %s, %s, %s, %s, %s)", (digest(token), key, device, now, now, address))
            conn.execute("DELETE FROM devices WHERE (revoked IS NOT NULL AND revoked < %s) OR last_used < %s",
                         (now - self.ttl, now - 2 * self.ttl))
        return token

    def check(self, username: str, token: str, address: str) -> TokenCheck:
        """The device ``token`` logs ``username`` in as (and it is marked used), or why not."""
        now = self._clock()
        with self.schema.connection() as conn:
            row = conn.execute("SELECT device, last_used, revoked, why FROM devices WHERE token_hash = %s"
                               " AND name_key = %s", (digest(token), name_key(username))).fetchone()
            refusal = refusal_for(row, now, self.ttl)
            if refusal is not None:
                return TokenCheck(refusal=refusal)
            assert row is not None
            conn.execute("UPDATE devices SET last_used = %s, last_address = %s WHERE token_hash = %s",
                         (now, address, digest(token)))
        return TokenCheck(device=str(row[0]))

    def devices(self, username: str) -> list[Device]:
        cutoff = self._clock() - self.ttl
        with self.schema.connection() as conn:
            rows = conn.execute("SELECT device, created, last_used, last_address FROM devices WHERE name_key = %s"
                                " AND revoked IS NULL AND last_used >= %s ORDER BY last_used DESC",
                                (name_key(username), cutoff)).fetchall()
        return [Device(str(d), float(c), float(u), str(a)) for d, c, u, a in rows]

    def revoke(self, username: str, device: Optional[str] = None, why: str = "revoked") -> int:
        now = self._clock()
        with self.schema.connection() as conn:
            if device is None:
                cursor = conn.execute("UPDATE devices SET revoked = %s, why = %s WHERE name_key = %s"
                                      " AND revoked IS NULL", (now, why, name_key(username)))
            else:
                cursor = conn.execute("UPDATE devices SET revoked = %s, why = %s WHERE name_key = %s"
                                      " AND device = %s AND revoked IS NULL", (now, why, name_key(username), device))
        return cursor.rowcount

    def forget_user(self, username: str) -> None:
        with self.schema.connection() as conn:
            conn.execute("DELETE FROM devices WHERE name_key = %s", (name_key(username),))
