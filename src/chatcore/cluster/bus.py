"""Events between the nodes of a cluster, on one Redis Stream.

PostgreSQL holds the truth; the bus only tells the other nodes that something new exists, so
they can deliver it to the sessions they hold. A stream, not plain pub/sub, because pub/sub
drops whatever is published while a subscriber is reconnecting: the reader asks for the
entries after the last one it saw, so a short loss of Redis costs nothing. Whatever the bus
may still have missed (Redis restarted empty, the outbox overflowed) is reported to the
``on_resync`` handlers, which fetch the truth from PostgreSQL.

Publishing never blocks the caller: events go to an outbox that one thread writes to Redis
in batches, holding them while Redis is away. One supervised reader thread per node reads the
stream and calls the subscribers of each topic; a handler must not block (sessions queue
what they send), and one that raises is logged and the reader goes on. Throw-away events
(typing) use ``notify``/``listen``: Redis pub/sub, lost when nobody listens.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Callable, Mapping, Optional

import orjson
import redis

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]
BACKOFF_MAX = 2.0


class Bus:
    """The cluster's event stream as one node sees it."""

    def __init__(self, client: Any, prefix: str, node_id: str, stream_length: int = 100_000,
                 outbox_limit: int = 100_000, block_ms: int = 1000) -> None:
        self.redis = client  # a redis.Redis answering bytes (typed Any: redis-py types replies loosely)
        pool = client.connection_pool  # the reader blocks in XREAD on connections of its own,
        self._reader: Any = redis.Redis(connection_pool=type(pool)(connection_class=pool.connection_class,
                                                                   **pool.connection_kwargs))  # cut at stop
        self.node_id = node_id
        self.stream = f"{prefix}bus"
        self.channel = f"{prefix}ephemeral"
        self.stream_length = stream_length
        self.block_ms = block_ms
        self._handlers: dict[str, list[Handler]] = collections.defaultdict(list)
        self._listeners: dict[str, list[Handler]] = collections.defaultdict(list)
        self._resync: list[Callable[[], None]] = []
        self._outbox: collections.deque[tuple[str, bytes]] = collections.deque()
        self._outbox_limit = outbox_limit
        self._overflowed = False
        self._pending = threading.Condition()
        self._stop = threading.Event()
        self._last_id = "$"
        self._threads: list[threading.Thread] = []
        self.connected = threading.Event()  # set while the reader holds a working connection
        self.published = 0
        self.received = 0
        self.resyncs = 0

    # -- what plugins call -------------------------------------------------------------------

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call ``handler(event)`` on the reader thread for every event on ``topic`` that
        another node published (a node's own events are for it to handle when it publishes)."""
        self._handlers[topic].append(handler)

    def on_resync(self, handler: Callable[[], None]) -> None:
        """Call ``handler()`` when events may have been missed (Redis came back after an
        outage, or this node's outbox overflowed): re-read from PostgreSQL what matters."""
        self._resync.append(handler)

    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        """Queue ``event`` (JSON-able) for the other nodes; returns at once."""
        payload = orjson.dumps(event)
        with self._pending:
            if len(self._outbox) >= self._outbox_limit:
                self._outbox.popleft()
                self._overflowed = True
            self._outbox.append((topic, payload))
            self._pending.notify()

    def notify(self, topic: str, event: Mapping[str, Any]) -> None:
        """Send a throw-away event (pub/sub): lost if Redis is away or nobody listens."""
        try:
            self.redis.publish(self.channel, orjson.dumps({"t": topic, "n": self.node_id, "e": event}))
        except redis.RedisError as error:
            log.debug("ephemeral %s event dropped: %s", topic, error)

    def listen(self, topic: str, handler: Handler) -> None:
        """Call ``handler(event)`` for throw-away events on ``topic`` from other nodes."""
        self._listeners[topic].append(handler)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start reading after the stream's current end, and the publisher."""
        self._last_id = self._stream_end()
        if self._last_id != "0-0" or self._reachable():
            self.connected.set()
        for name, target in (("reader", self._read_loop), ("publisher", self._publish_loop),
                             ("listener", self._listen_loop)):
            thread = threading.Thread(target=self._supervised, args=(name, target), name=f"chatcore-bus-{name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, flush_timeout: float = 2.0) -> None:
        """Write what the outbox holds (for up to ``flush_timeout`` s), then stop the threads."""
        with self._pending:
            self._pending.wait_for(lambda: not self._outbox, timeout=flush_timeout)
            self._stop.set()
            self._pending.notify_all()
        self._reader.connection_pool.disconnect()  # wakes the reader out of its blocking read
        for thread in self._threads:
            thread.join(timeout=self.block_ms / 1000 + 3)
        self._threads.clear()
        self._reader.close()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the outbox is written to Redis (tests, shutdown); False on timeout."""
        with self._pending:
            return self._pending.wait_for(lambda: not self._outbox and not self._writing, timeout=timeout)

    _writing = False

    def outbox_size(self) -> int:
        """Events not yet written to Redis."""
        return len(self._outbox)

    # -- threads -----------------------------------------------------------------------------

    def _supervised(self, name: str, loop: Callable[[], None]) -> None:
        """Run ``loop`` until stop, restarting it (logged) when it fails unexpectedly."""
        while not self._stop.is_set():
            try:
                loop()
            except Exception:
                log.exception("bus %s failed; restarting it", name)
                self._stop.wait(0.5)

    def _reachable(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def _stream_end(self) -> str:
        try:
            entries = self.redis.xrevrange(self.stream, count=1)
        except redis.RedisError:
            return "0-0"  # read from the start once Redis is back: nothing at all is missed
        return entries[0][0].decode() if entries else "0-0"

    def _read_loop(self) -> None:
        backoff = 0.05
        lost = False
        while not self._stop.is_set():
            try:
                replies = self._reader.xread({self.stream: self._last_id}, count=500, block=self.block_ms)
            except (redis.RedisError, OSError, ValueError) as error:  # OSError, ValueError: cut by stop
                if self._stop.is_set():
                    return
                if not lost:
                    log.warning("bus: Redis unreachable (%s); reconnecting", error)
                lost = True
                self.connected.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            self.connected.set()
            backoff = 0.05
            if lost:
                lost = False
                self._after_outage()
            for _stream, entries in replies or ():
                for entry_id, fields in entries:
                    self._last_id = entry_id.decode()
                    self._dispatch(fields)

    def _after_outage(self) -> None:
        """Redis is back: if it restarted empty, the stream's ids began again, so read it from
        the start; either way events may be gone, so tell the resync handlers."""
        try:
            end = self._stream_end()
            if _id_key(end) < _id_key(self._last_id):
                self._last_id = "0-0"
        except redis.RedisError:
            pass
        log.info("bus: Redis is back; resynchronising from the database")
        self._run_resync()

    def _run_resync(self) -> None:
        self.resyncs += 1
        for handler in list(self._resync):
            try:
                handler()
            except Exception:
                log.exception("bus resync handler %r failed", handler)

    def _dispatch(self, fields: Mapping[bytes, bytes]) -> None:
        node = fields.get(b"n", b"").decode()
        topic = fields.get(b"t", b"").decode()
        if topic == "resync" and node != self.node_id:
            self._run_resync()
            return
        if node == self.node_id:
            return
        self.received += 1
        try:
            event = orjson.loads(fields.get(b"e", b"{}"))
        except orjson.JSONDecodeError:
            log.warning("bus: dropped an undecodable %s event from %s", topic, node)
            return
        for handler in self._handlers.get(topic, ()):
            try:
                handler(event)
            except Exception:
                log.exception("bus handler for %s failed", topic)

    def _publish_loop(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            with self._pending:
                self._pending.wait_for(lambda: self._outbox or self._stop.is_set())
                if self._stop.is_set() and not self._outbox:
                    return
                batch = list(self._outbox)[:500]
                overflowed, self._overflowed = self._overflowed, False
                self._writing = True
            try:
                self._write(batch, overflowed)
            except redis.RedisError as error:
                with self._pending:
                    self._writing = False
                    self._overflowed = self._overflowed or overflowed
                log.warning("bus: cannot publish %d events yet (%s)", len(batch), error)
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = 0.05
            with self._pending:
                for _ in batch:
                    self._outbox.popleft()
                self._writing = False
                self.published += len(batch)
                self._pending.notify_all()

    def _write(self, batch: list[tuple[str, bytes]], overflowed: bool) -> None:
        pipe = self.redis.pipeline(transaction=False)
        if overflowed:
            pipe.xadd(self.stream, {"t": "resync", "n": self.node_id, "e": b"{}"},
                      maxlen=self.stream_length, approximate=True)
        for topic, payload in batch:
            pipe.xadd(self.stream, {"t": topic, "n": self.node_id, "e": payload},
                      maxlen=self.stream_length, approximate=True)
        pipe.execute()

    def _listen_loop(self) -> None:
        pubsub: Optional[Any] = None
        try:
            while not self._stop.is_set():
                try:
                    if pubsub is None:
                        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                        pubsub.subscribe(self.channel)
                    message = pubsub.get_message(timeout=0.2)  # short: nothing else ends this wait at stop
                except redis.RedisError:
                    if pubsub is not None:
                        pubsub.close()
                    pubsub = None
                    self._stop.wait(0.5)
                    continue
                if message and message.get("type") == "message":
                    self._hear(message["data"])
        finally:
            if pubsub is not None:
                pubsub.close()

    def _hear(self, data: bytes) -> None:
        try:
            wrapped = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if wrapped.get("n") == self.node_id:
            return
        for handler in self._listeners.get(wrapped.get("t", ""), ()):
            try:
                handler(wrapped.get("e") or {})
            except Exception:
                log.exception("ephemeral handler for %s failed", wrapped.get("t"))


def _id_key(entry_id: str) -> tuple[int, int]:
    """A stream id ("ms-seq") as a sortable pair; "$" counts as the end."""
    if entry_id == "$":
        return (1 << 62, 0)
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0))
