"""Which store the plugin and ``chatcore user`` use: SQLite under ``<data>/auth/`` on a single
node, the cluster's PostgreSQL (``auth`` schema) in cluster mode. Both answer the same calls."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from chatcore_auth import NAME
from chatcore_auth.devices import Clock, DeviceTokens, TokenStore
from chatcore_auth.pg_store import MIGRATIONS, PgAccountStore, PgDeviceTokens
from chatcore_auth.store import FILENAME, AccountStorage, AccountStore

if TYPE_CHECKING:
    from chatcore.cluster import Cluster, Database


def migrate(database: "Database") -> int:
    """Create or upgrade the ``auth`` schema; the version reached."""
    return database.schema(NAME).migrate(MIGRATIONS)


def open_stores(plugin_dir: Path, cluster: Optional["Cluster"], token_ttl: float,
                wall_clock: Clock = time.time) -> tuple[AccountStorage, TokenStore]:
    """The account and device-token stores: in ``cluster``'s database if given, else the
    SQLite file in ``plugin_dir``."""
    if cluster is not None:
        schema = cluster.database.schema(NAME)
        return PgAccountStore(schema), PgDeviceTokens(schema, token_ttl, wall_clock)
    store = AccountStore(plugin_dir / FILENAME)
    return store, DeviceTokens(store.path, token_ttl, wall_clock)
