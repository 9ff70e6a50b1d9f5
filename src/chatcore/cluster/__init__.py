"""Cluster mode: several nodes sharing one PostgreSQL (what is durable) and one Redis (what
crosses nodes). On when both ``CHATCORE_DATABASE_URL`` and ``CHATCORE_REDIS_URL`` are set;
otherwise ``open_cluster`` answers None and every plugin keeps its SQLite files.

``server.cluster`` is what a plugin sees (from ``chat_configure`` on): ``database`` (a
connection pool; ``database.schema(name)`` is the plugin's own schema), ``bus`` (events to
the other nodes), ``nodes`` (which nodes live; one claimant per dead node), ``redis`` (for
counters shared by every node, under ``key(...)``) and ``node_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from chatcore import config as settings
from chatcore.cluster.errors import ClusterUnavailable, DatabaseUnavailable
from chatcore.config import Config, ConfigError

if TYPE_CHECKING:
    from chatcore.cluster.bus import Bus
    from chatcore.cluster.database import Database, Schema
    from chatcore.cluster.node import Cluster
    from chatcore.cluster.nodes import NodeRegistry

__all__ = ["Bus", "Cluster", "ClusterUnavailable", "Database", "DatabaseUnavailable", "NodeRegistry", "Schema",
           "cluster_configured", "open_cluster"]

# Loaded on first use, so that a single node never imports psycopg and redis (~30 MiB of RSS)
_LAZY = {"Bus": "chatcore.cluster.bus", "Database": "chatcore.cluster.database", "Schema": "chatcore.cluster.database",
         "Cluster": "chatcore.cluster.node", "NodeRegistry": "chatcore.cluster.nodes"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'chatcore.cluster' has no attribute {name!r}")


def cluster_configured(config: Config) -> bool:
    """Whether cluster mode is asked for; one URL without the other is a configuration error."""
    database, redis_url = config.get(settings.DATABASE_URL), config.get(settings.REDIS_URL)
    if bool(database) != bool(redis_url):
        raise ConfigError("cluster mode needs both CHATCORE_DATABASE_URL and CHATCORE_REDIS_URL (or neither)")
    return bool(database)


def open_cluster(config: Config) -> Optional["Cluster"]:
    """The connected cluster when configured (not started yet), else None."""
    if not cluster_configured(config):
        return None
    from chatcore.cluster.node import Cluster

    cluster = Cluster(config)
    cluster.connect()
    return cluster
