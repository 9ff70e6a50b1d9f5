"""Prometheus metrics of cluster mode: nodes alive, the bus's traffic and outbox, the pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from chatcore.cluster import Cluster


class ClusterCollector:
    """What this node sees of the cluster, read at each scrape."""

    def __init__(self, cluster: "Cluster") -> None:
        self.cluster = cluster

    def collect(self) -> Iterator[Metric]:
        bus, nodes = self.cluster.bus, self.cluster.nodes
        try:
            alive = float(len(nodes.alive()))
        except Exception:
            alive = float("nan")  # Redis away: unknown, not zero
        yield GaugeMetricFamily("chatcore_cluster_nodes", "Nodes with a live heartbeat, this one included.", value=alive)
        yield GaugeMetricFamily("chatcore_bus_connected", "1 while this node's bus reader holds a Redis connection.",
                                value=1.0 if bus.connected.is_set() else 0.0)
        yield CounterMetricFamily("chatcore_bus_published", "Events this node wrote to the bus.", value=bus.published)
        yield CounterMetricFamily("chatcore_bus_received", "Events from other nodes this node read.", value=bus.received)
        yield CounterMetricFamily("chatcore_bus_resyncs", "Times this node re-read from PostgreSQL because events "
                                  "may have been missed (Redis outage, outbox overflow).", value=bus.resyncs)
        yield GaugeMetricFamily("chatcore_bus_outbox", "Events waiting to be written to Redis.", value=bus.outbox_size())
        stats = self.cluster.database.pool.get_stats()
        yield GaugeMetricFamily("chatcore_database_connections", "PostgreSQL connections this node holds.",
                                value=stats.get("pool_size", 0))
        yield GaugeMetricFamily("chatcore_database_waiting", "Callers waiting for a PostgreSQL connection.",
                                value=stats.get("requests_waiting", 0))
