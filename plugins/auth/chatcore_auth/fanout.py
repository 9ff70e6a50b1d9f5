"""The command line's way to reach every node's live sessions in a cluster: end a user's
sessions (password set, device revoked), a changed admin flag. It publishes the core's own
events (``chatcore.cluster.relay``), which a node also publishes whenever it ends a user's
sessions itself (``server.users.end_sessions`` is cluster-wide), so the plugin adds no topic.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, Iterator, Optional

if TYPE_CHECKING:
    from chatcore.cluster import Bus, Cluster
    from chatcore.config import Config

log = logging.getLogger(__name__)

CLI_BLOCK_MS = 50  # how long the command line's bus reader blocks on Redis per read


def end_sessions_event(username: str, code: str, device: Optional[str] = None) -> dict[str, Any]:
    """The core's event for ending a user's sessions on every node (``chatcore.cluster.relay``)."""
    return {"username": username, "code": code, "reason": "", "device": device}


@contextlib.contextmanager
def cli_bus(cluster: "Cluster") -> Iterator["Bus"]:
    """The bus for a command-line process, which is no node: started for the block, and what
    was published is written to Redis before it ends. It reads nothing, so its reader waits
    on Redis only briefly: stopping it then takes no noticeable time."""
    cluster.bus.block_ms = CLI_BLOCK_MS
    cluster.bus.start()
    try:
        yield cluster.bus
    finally:
        cluster.bus.stop(flush_timeout=5.0)


def publish_from_cli(config: "Config", topic: str, event: dict[str, Any]) -> bool:
    """Publish one event to every node of the configured cluster; False when not in cluster mode."""
    from chatcore.cluster import open_cluster

    cluster = open_cluster(config)
    if cluster is None:
        return False
    try:
        with cli_bus(cluster) as bus:
            bus.publish(topic, event)
    finally:
        cluster.close()
    return True
