"""Prometheus metrics of one server: a registry of its own, collectors that read live state
when scraped, and the few counters the request path needs.

Every server has a ``Metrics`` (``server.metrics``) with its own ``CollectorRegistry``, never
prometheus_client's global one, so the many servers one test process starts never share a
number. Most numbers are read at scrape time: connections, sessions and users online from
the session registry, plugin failures and fault-budget state from ``FaultBudget``, storage
sizes from the data directory. Only events that leave no state behind are counted as they
happen, each with one cheap call (a lock and a dict update, no prometheus_client on the hot
path): requests by command and result (the dispatcher) and sessions opened and closed by
reason (the core plugin). Plugins add their own collectors through ``chat_metrics``.
``chatcore.monitor`` serves the registry over HTTP when CHATCORE_METRICS_ADDRESS is set.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Hashable, Iterable, Iterator, Optional

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chatcore import __version__
from chatcore import config as settings
from chatcore.config import ConfigError

if TYPE_CHECKING:
    from chatcore.monitor import Monitor
    from chatcore.server import ChatServer
    from chatcore.session import Session

log = logging.getLogger(__name__)

OK = "ok"  # the result of a request answered without an ``error``
NO_COMMAND = "(none)"  # the command label of a request that named none (or was not an object)
UNKNOWN_COMMAND = "(unknown)"  # ... of one naming no registered command: client text never becomes a label
# Session.close reasons (their beginnings) -> the ``reason`` label of chatcore_disconnects_total.
DISCONNECT_REASONS = (
    ("send buffer full", "send_buffer_full"),
    ("client read nothing", "send_timeout"),
    ("connection lost while sending", "send_failed"),
    ("the connection failed", "send_failed"),
    ("idle", "idle_timeout"),
    ("did not log in in time", "login_timeout"),
    ("protocol error", "protocol_error"),
    ("session ended", "session_ended"),
    ("client sent close", "client_close"),
)

DISCONNECT_ZEROS: dict[Hashable, int] = {label: 0 for label in ["closed", "other", *dict(DISCONNECT_REASONS).values()]}


def disconnect_reason(close_reason: str) -> str:
    """The label for a session's ``close_reason``: ``closed`` when none was given (the client
    hung up, or the server shut down), ``other`` for a reason not in DISCONNECT_REASONS."""
    if not close_reason:
        return "closed"
    return next((label for start, label in DISCONNECT_REASONS if close_reason.startswith(start)), "other")


def parse_address(text: str) -> Optional[tuple[str, int]]:
    """(host, port) from CHATCORE_METRICS_ADDRESS (``127.0.0.1:9464``, ``[::1]:9464``); None when empty."""
    text = text.strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{settings.METRICS_ADDRESS.name}={text!r} must be HOST:PORT, e.g. 127.0.0.1:9464 "
                          "or [::1]:9464 (port 0 picks a free one)")
    return host, int(port)


class Counts:
    """Event counts by a small hashable key (a label tuple): one lock and one dict update per event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Hashable, int] = {}

    def add(self, key: Hashable) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> dict[Hashable, int]:
        with self._lock:
            return dict(self._counts)


def _counter(name: str, doc: str, labels: Iterable[str], rows: dict[Hashable, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for key, value in sorted(rows.items(), key=repr):
        family.add_metric(list(key) if isinstance(key, tuple) else [str(key)], value)
    return family


class CoreCollector:
    """The core's numbers, read from the server's live state whenever the registry is scraped."""

    def __init__(self, server: "ChatServer", metrics: "Metrics") -> None:
        self._server, self._metrics = server, metrics

    def collect(self) -> Iterator[Metric]:
        server, metrics = self._server, self._metrics
        info = GaugeMetricFamily("chatcore_info", "The running chatcore version (always 1).", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily("chatcore_uptime_seconds", "Seconds since the server started.", value=metrics.uptime())
        sessions = server.sessions.all()
        tls = sum(1 for s in sessions if s.tls)
        connections = GaugeMetricFamily("chatcore_connections", "Open client connections (sessions) by transport.",
                                        labels=["transport"])
        connections.add_metric(["plain"], len(sessions) - tls)
        connections.add_metric(["tls"], tls)
        yield connections
        yield _counter("chatcore_connections_opened", "Client connections opened, by transport.", ["transport"],
                       {"plain": 0, "tls": 0, **metrics.opened.snapshot()})
        yield GaugeMetricFamily("chatcore_sessions_logged_in", "Logged-in sessions.",
                                value=len(server.sessions.authenticated()))
        yield GaugeMetricFamily("chatcore_users_online", "Users with at least one logged-in session.",
                                value=len(server.sessions.online_users()))
        yield GaugeMetricFamily("chatcore_connections_accepted", "Connections accepted and not yet ended, "
                                "those still choosing plaintext or TLS or handshaking included.",
                                value=len(server.connections()))
        yield GaugeMetricFamily("chatcore_workers", "Worker threads serving requests, the one running each "
                                "reactor's loop included (the pool grows when all are blocked).", value=server.workers.size)
        yield GaugeMetricFamily("chatcore_workers_queued", "Connections with requests waiting for a worker.",
                                value=server.workers.queued)
        requests = metrics.requests.snapshot()
        yield _counter("chatcore_requests", "Requests by command and result: ok, or the error code answered.",
                       ["command", "result"], requests)
        yield CounterMetricFamily("chatcore_rate_limited", "Requests refused by the per-session rate limit.",
                                  value=sum(n for key, n in requests.items()
                                            if isinstance(key, tuple) and key[1] == "rate_limited"))
        yield _counter("chatcore_disconnects", "Sessions ended, by reason (send_buffer_full: the client did not "
                       "read; closed: it hung up).", ["reason"], {**DISCONNECT_ZEROS, **metrics.closed.snapshot()})
        yield from self._plugins()

    def _plugins(self) -> Iterator[Metric]:
        """Per-plugin failures and fault-budget state."""
        server, budget = self._server, self._server.budget
        failures = CounterMetricFamily("chatcore_plugin_failures", "Handler and hook exceptions, by plugin.",
                                       labels=["plugin"])
        recent = GaugeMetricFamily("chatcore_plugin_recent_failures",
                                   "Failures within CHATCORE_FAULT_WINDOW (the plugin is disabled past "
                                   "chatcore_plugin_fault_limit).", labels=["plugin"])
        disabled = GaugeMetricFamily("chatcore_plugin_disabled", "1 while the fault budget keeps the plugin disabled.",
                                     labels=["plugin"])
        counted = budget.counted_failures()
        for plugin in ["core", *server.plugin_names]:
            failures.add_metric([plugin], counted.get(plugin, 0))
            recent.add_metric([plugin], budget.recent(plugin))
            disabled.add_metric([plugin], 1 if budget.is_disabled(plugin) else 0)
        yield failures
        yield recent
        yield disabled
        yield GaugeMetricFamily("chatcore_plugin_fault_limit", "Failures within the window a plugin may have "
                                "(CHATCORE_FAULT_LIMIT; 0: never disabled).", value=budget.limit)


class StorageCollector:
    """Bytes each plugin keeps under the data directory, read from the file system when scraped:
    every file directly in ``<data>/<plugin>/`` (databases, their WAL) and every folder there
    summed (the file spool), plus the free space left."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir

    def collect(self) -> Iterator[Metric]:
        sizes = GaugeMetricFamily("chatcore_storage_bytes", "Bytes stored, by plugin folder and the file or "
                                  "folder directly in it.", labels=["plugin", "path"])
        for plugin, path, size in self.sizes():
            sizes.add_metric([plugin, path], size)
        yield sizes
        free = GaugeMetricFamily("chatcore_storage_free_bytes", "Bytes free for the server on the data "
                                 "directory's file system.")
        try:
            stat = os.statvfs(self._data_dir)
            free.add_metric([], stat.f_bavail * stat.f_frsize)
        except OSError:
            pass
        yield free

    def sizes(self) -> list[tuple[str, str, int]]:
        """(plugin folder, entry, bytes) for what is stored now; entries that vanish are skipped."""
        found: list[tuple[str, str, int]] = []
        for plugin in _entries(self._data_dir):
            if not plugin.is_dir(follow_symlinks=False):
                continue
            for entry in _entries(Path(plugin.path)):
                try:
                    if entry.is_dir(follow_symlinks=False):
                        found.append((plugin.name, entry.name, _tree_bytes(Path(entry.path))))
                    elif entry.is_file(follow_symlinks=False):
                        found.append((plugin.name, entry.name, entry.stat(follow_symlinks=False).st_size))
                except OSError:
                    continue
        return sorted(found)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as listing:
            return list(listing)
    except OSError:
        return []


def _tree_bytes(directory: Path) -> int:
    total = 0
    for entry in _entries(directory):
        try:
            if entry.is_dir(follow_symlinks=False):
                total += _tree_bytes(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


class PluginCollector:
    """A plugin's collector in the server's registry. A failure while scraping belongs to the
    plugin (logged, counted in its fault budget) and leaves only its metrics out of that scrape;
    a plugin the budget disabled is not asked."""

    def __init__(self, plugin: str, collector: Collector, server: "ChatServer") -> None:
        self.plugin, self._collector, self._server = plugin, collector, server

    def describe(self) -> Iterable[Metric]:
        """The metrics it will give (the registry refuses names that clash)."""
        describe = getattr(self._collector, "describe", None)
        return list(describe() if describe is not None else self._collector.collect())

    def collect(self) -> Iterable[Metric]:
        if self._server.budget.is_disabled(self.plugin):
            return []
        try:
            return list(self._collector.collect())
        except Exception:
            self._server.plugins.failed(self.plugin, "metrics collection")
            return []


class Metrics:
    """One server's registry, its hot-path counts and the metrics port's lifecycle."""

    def __init__(self, server: "ChatServer") -> None:
        self._server = server
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counts()  # (command, result) -> requests (the dispatcher counts)
        self.opened = Counts()  # transport -> sessions opened (the core plugin counts)
        self.closed = Counts()  # disconnect_reason -> sessions ended (the core plugin counts)
        self.configured_address = parse_address(server.config.get(settings.METRICS_ADDRESS))
        self.monitor: Optional["Monitor"] = None
        self._started = 0.0  # monotonic time of start()

    @property
    def address(self) -> Optional[tuple[str, int]]:
        """The metrics port's bound (host, port), the real port when 0 was asked; None when off."""
        return self.monitor.address if self.monitor is not None else None

    def uptime(self) -> float:
        return time.monotonic() - self._started if self._started else 0.0

    def session_opened(self, session: "Session") -> None:
        self.opened.add("tls" if session.tls else "plain")

    def session_closed(self, session: "Session") -> None:
        self.closed.add(disconnect_reason(session.close_reason))

    def bind(self) -> None:
        """Bind the metrics port if one is configured (with the server's port, so an address in
        use fails the start before anything is served)."""
        if self.configured_address is not None and self.monitor is None:
            from chatcore.monitor import Monitor  # the HTTP side loads only when it is used

            config = self._server.config
            self.monitor = Monitor(self._server, self, self.configured_address,
                                   config.get(settings.METRICS_MAX_CLIENTS), config.get(settings.METRICS_TIMEOUT))

    def start(self) -> None:
        """Collect the plugins' metrics (``chat_metrics``) and start serving the port, if bound."""
        self._started = time.monotonic()
        self.registry.register(CoreCollector(self._server, self))
        self.registry.register(StorageCollector(self._server.data_dir))
        if self._server.cluster is not None:
            from chatcore.cluster.metrics import ClusterCollector

            self.registry.register(ClusterCollector(self._server.cluster))
        for impl in self._server.plugins.implementations("chat_metrics"):
            try:
                impl.function(register=functools.partial(self.register, impl.plugin_name))
            except Exception:
                self._server.plugins.failed(impl.plugin_name, "chat_metrics")
        if self.monitor is not None:
            self.monitor.start()
            host, port = self.monitor.address
            log.info("metrics, health and status page on http://%s:%d/ (/metrics, /healthz, /readyz)",
                     f"[{host}]" if ":" in host else host, port)

    def register(self, plugin: str, collector: Collector) -> None:
        """Add a plugin's collector; a metric name already taken raises ValueError."""
        self.registry.register(PluginCollector(plugin, collector, self._server))

    def stop(self) -> None:
        """Stop serving the port (before plugin storage closes: no scrape reads a closed store)."""
        if self.monitor is not None:
            self.monitor.stop()

    def total(self, name: str) -> Optional[float]:
        """The sum of a counter's samples (``name`` without ``_total``) over its labels; None
        when no collector gives it. Asks only the collectors that give it."""
        found: Optional[float] = None
        for family in self.registry.restricted_registry([name + "_total"]).collect():
            for sample in family.samples:
                if sample.name == name + "_total":
                    found = (found or 0.0) + sample.value
        return found

