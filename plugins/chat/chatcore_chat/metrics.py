"""The chat plugin's metrics (through ``chat_metrics``), all read when scraped: messages stored
and deliveries queued (the relay's counts), and the store's commits and write queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from chatcore_chat.service import ChatService


class ChatCollector:
    """Reads the service's relay and writer; yields nothing before the store is open."""

    def __init__(self, service: "ChatService") -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        relay, writer = self.service.relay, self.service.writer
        stats = relay.stats if relay is not None else None
        messages = CounterMetricFamily("chatcore_chat_messages", "Messages stored and relayed, by kind "
                                       "(private or broadcast).", labels=["kind"])
        deliveries = CounterMetricFamily("chatcore_chat_deliveries", "Message events queued to recipients' "
                                         "sessions, by how (live, offline backlog, catch_up after a reconnect).",
                                         labels=["how"])
        messages.add_metric(["private"], stats.private if stats else 0)
        messages.add_metric(["broadcast"], stats.broadcast if stats else 0)
        deliveries.add_metric(["live"], stats.live if stats else 0)
        deliveries.add_metric(["offline"], stats.offline if stats else 0)
        deliveries.add_metric(["catch_up"], stats.catch_up if stats else 0)
        yield messages
        yield deliveries
        yield CounterMetricFamily("chatcore_chat_store_commits", "Transactions the history store committed.",
                                  value=writer.commits if writer is not None else 0)
        yield GaugeMetricFamily("chatcore_chat_store_queue", "Operations waiting for the history store's writer.",
                                value=writer.queued if writer is not None else 0)
