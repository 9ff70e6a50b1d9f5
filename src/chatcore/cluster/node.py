"""This node's handles on the shared services: the PostgreSQL pool, the Redis client, the bus
and the node registry (``chatcore.cluster`` loads this only when cluster mode is on)."""

from __future__ import annotations

import logging
import os
import secrets
import socket

import redis

from chatcore import config as settings
from chatcore.cluster.bus import Bus
from chatcore.cluster.database import Database
from chatcore.cluster.errors import ClusterUnavailable, DatabaseUnavailable
from chatcore.cluster.nodes import NodeRegistry
from chatcore.config import Config

log = logging.getLogger(__name__)


class Cluster:
    """This node's handles on the shared services."""

    def __init__(self, config: Config) -> None:
        self.node_id: str = config.get(settings.NODE_ID) or new_node_id()
        self.prefix: str = config.get(settings.REDIS_PREFIX)
        self.database = Database(config.get(settings.DATABASE_URL), config.get(settings.DATABASE_POOL_MIN),
                                 config.get(settings.DATABASE_POOL_MAX), config.get(settings.DATABASE_TIMEOUT))
        timeout = config.get(settings.DATABASE_TIMEOUT)
        self.redis: redis.Redis = redis.Redis.from_url(
            config.get(settings.REDIS_URL), socket_timeout=timeout, socket_connect_timeout=min(timeout, 5.0),
            health_check_interval=30)
        self.bus = Bus(self.redis, self.prefix, self.node_id, config.get(settings.BUS_STREAM_LENGTH),
                       config.get(settings.BUS_OUTBOX))
        self.nodes = NodeRegistry(self.redis, self.prefix, self.node_id, config.get(settings.NODE_TTL))
        self._started = False

    def key(self, *parts: str) -> str:
        """A Redis key of this cluster: the prefix, then the parts joined by ':'."""
        return self.prefix + ":".join(parts)

    def connect(self) -> None:
        """Reach PostgreSQL and Redis, or raise ClusterUnavailable saying which failed."""
        try:
            self.database.open()
        except DatabaseUnavailable as error:
            raise ClusterUnavailable(str(error)) from error
        try:
            self.redis.ping()
        except redis.RedisError as error:
            self.database.close()
            raise ClusterUnavailable(f"Redis is unreachable: {error}") from error

    def start(self) -> None:
        """Join the cluster: heartbeat, bus reader and publisher."""
        self.nodes.start()
        self.bus.start()
        self._started = True
        log.info("cluster node %s joined (%d nodes alive)", self.node_id, len(self.nodes.alive()))

    def problem(self) -> str:
        """Why this node cannot serve the cluster right now ('' when it can): for ``/readyz``."""
        if self._started and not self.bus.connected.is_set():
            return "the bus (Redis) is unreachable"
        try:
            with self.database.connection("public") as conn:
                conn.execute("SELECT 1")
        except Exception as error:
            return f"PostgreSQL is unreachable: {error}"
        return ""

    def leave(self) -> None:
        """Leave the cluster: the outbox written, the bus threads stopped, the heartbeat removed."""
        if self._started:
            self.bus.stop()
            self.nodes.stop()
            self._started = False

    def close(self) -> None:
        """Leave (if still joined) and close the connections."""
        self.leave()
        self.database.close()
        self.redis.close()


def new_node_id() -> str:
    return f"{socket.gethostname() or 'node'}-{os.getpid()}-{secrets.token_hex(3)}"
