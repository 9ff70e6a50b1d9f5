"""Which nodes are alive: a heartbeat per node in Redis, and one claimant per dead node.

Each node keeps ``<prefix>node:<id>`` alive with a TTL and belongs to the set
``<prefix>nodes``. Every node looks, once per heartbeat, for members whose key has expired:
the first to remove a dead member from the set (``SREM`` answers 1 to exactly one caller)
runs the ``on_node_lost`` handlers for it, so cleanup (its users going offline) happens once
cluster-wide, within ``ttl`` plus one heartbeat of the node's death.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import redis

log = logging.getLogger(__name__)


class NodeRegistry:
    """This node's heartbeat, and the detection of nodes that stopped beating."""

    def __init__(self, client: Any, prefix: str, node_id: str, ttl: float = 10.0) -> None:
        self.redis = client  # a redis.Redis answering bytes (typed Any: redis-py types replies loosely)
        self.prefix = prefix
        self.node_id = node_id
        self.ttl = ttl
        self.interval = max(0.2, ttl / 5)
        self._lost: list[Callable[[str], None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chatcore-heartbeat", daemon=True)
        self.started_at = time.time()

    def key(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}"

    def on_node_lost(self, handler: Callable[[str], None]) -> None:
        """Call ``handler(node_id)`` on this node when it is the one that claimed a dead node."""
        self._lost.append(handler)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and leave the cluster cleanly (the others need not wait for the TTL)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 2)
        try:
            self.redis.delete(self.key(self.node_id))
            self.redis.srem(f"{self.prefix}nodes", self.node_id)
        except redis.RedisError as error:
            log.warning("could not leave the cluster cleanly: %s", error)

    def beat(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.key(self.node_id), str(time.time()), px=int(self.ttl * 1000))
        pipe.sadd(f"{self.prefix}nodes", self.node_id)
        pipe.execute()

    def alive(self) -> list[str]:
        """The nodes whose heartbeat has not expired, this one included."""
        members = sorted(m.decode() for m in self.redis.smembers(f"{self.prefix}nodes"))
        pipe = self.redis.pipeline(transaction=False)
        for member in members:
            pipe.exists(self.key(member))
        return [m for m, there in zip(members, pipe.execute()) if there]

    def sweep(self) -> list[str]:
        """Claim the nodes that stopped beating; run the handlers for each; return them."""
        claimed = []
        members = [m.decode() for m in self.redis.smembers(f"{self.prefix}nodes")]
        for member in members:
            if member == self.node_id or self.redis.exists(self.key(member)):
                continue
            if self.redis.srem(f"{self.prefix}nodes", member) == 1:
                claimed.append(member)
                log.warning("node %s stopped beating; cleaning up after it", member)
                for handler in list(self._lost):
                    try:
                        handler(member)
                    except Exception:
                        log.exception("node-lost handler %r failed for %s", handler, member)
        return claimed

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
                self.sweep()
            except redis.RedisError as error:
                log.warning("heartbeat: Redis unreachable (%s)", error)
            except Exception:
                log.exception("heartbeat failed")
