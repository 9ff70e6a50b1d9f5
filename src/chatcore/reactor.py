"""The reactor: one thread and one selector reading many connections, with their deadlines.

It never runs a request: it reads what each socket has, lets the connection cut it into
frames, and the worker pool serves them. Other threads reach it only through ``call``, which
runs a function on the reactor's own thread (the selector and the timers are not shared).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Protocol

log = logging.getLogger(__name__)

# Timer entries are not removed when a connection ends (a heap cannot, cheaply), so they would
# keep ended connections in memory until their old deadline (the login or idle timeout, up to
# minutes). Once more than half the entries, and more than this many, are stale, the heap is
# rebuilt without them: amortised O(1) per connection.
COMPACT_AFTER = 256


class Watched(Protocol):
    """What the reactor needs of a connection."""

    sock: socket.socket
    scheduled_at: float  # the deadline the reactor's timer holds for it (inf: none)
    watched: int  # the events the reactor's selector holds for it (0: not registered)

    def readable(self) -> None: ...

    def writable(self) -> None: ...

    def events(self) -> int:
        """The selector events it waits for now (0: none, e.g. paused or ended)."""

    def deadline(self) -> float:
        """The monotonic time it must next be looked at (inf: never)."""

    def expire(self, now: float) -> None:
        """Its deadline passed: act on whichever limit it was."""


class Reactor(threading.Thread):
    """A selector loop over connections, with a heap of their deadlines."""

    def __init__(self, name: str = "chatcore-reactor") -> None:
        super().__init__(name=name, daemon=True)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._calls: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._woken = False
        self._wake_lock = threading.Lock()
        self._timers: list[tuple[float, int, Watched]] = []
        self._stale = 0  # timer entries of connections forgotten since the last compaction
        self._order = itertools.count()
        self._stopping = False

    # -- from any thread -------------------------------------------------------------------

    def call(self, function: Callable[..., None], *args: Any) -> None:
        """Run ``function(*args)`` on the reactor thread, soon."""
        self._calls.append((function, args))
        with self._wake_lock:
            if self._woken:
                return
            self._woken = True
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    def add(self, conn: Watched) -> None:
        """Start watching a new connection."""
        self.call(self.update, conn)

    def stop(self) -> None:
        self._stopping = True
        self.call(lambda: None)
        if self.is_alive():
            self.join()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- on the reactor thread ---------------------------------------------------------------

    def update(self, conn: Watched) -> None:
        """Bring the selector and the timer in line with what ``conn`` waits for now."""
        events = conn.events()
        if events != conn.watched:  # kept on the connection: asking the selector costs a lookup
            try:
                if not conn.watched:
                    self._selector.register(conn.sock, events, conn)
                elif events:
                    self._selector.modify(conn.sock, events, conn)
                else:
                    self._selector.unregister(conn.sock)
            except (KeyError, ValueError, OSError):  # closed meanwhile: it is ending anyway
                return
            conn.watched = events
        self._schedule(conn)

    def forget(self, conn: Watched) -> None:
        """Stop watching ``conn`` before its socket is closed."""
        if conn.watched:
            try:
                self._selector.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            conn.watched = 0
        if conn.scheduled_at != float("inf"):
            conn.scheduled_at = float("inf")
            self._stale += 1
            if self._stale > max(COMPACT_AFTER, len(self._timers) // 2):
                self._compact()

    def _compact(self) -> None:
        """Drop the timer entries no connection waits for any more (ended or superseded), in
        place: ``_fire_timers`` may be walking the same heap (an expiry ends a connection)."""
        self._timers[:] = [entry for entry in self._timers if entry[0] == entry[2].scheduled_at]
        heapq.heapify(self._timers)
        self._stale = 0

    def _schedule(self, conn: Watched) -> None:
        when = conn.deadline()
        if when < conn.scheduled_at:  # a later deadline needs no new entry: the old one re-checks
            conn.scheduled_at = when
            heapq.heappush(self._timers, (when, next(self._order), conn))

    def run(self) -> None:
        while not self._stopping:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            for key, mask in self._selector.select(timeout):
                conn = key.data
                if conn is None:
                    self._drain_wake()
                    continue
                try:
                    if mask & selectors.EVENT_WRITE:
                        conn.writable()
                    if mask & selectors.EVENT_READ:
                        conn.readable()
                except Exception:
                    log.exception("reading %r failed", conn)
                self.update(conn)
            self._run_calls()
            self._fire_timers(time.monotonic())

    def _drain_wake(self) -> None:
        """Read the wake bytes, then let callers wake us again: in this order, a byte sent
        while draining is never swallowed with the flag left set (which would lose wakes)."""
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        with self._wake_lock:
            self._woken = False  # calls made before this line are run by the _run_calls that follows

    def _run_calls(self) -> None:
        for _ in range(len(self._calls)):
            function, args = self._calls.popleft()
            try:
                function(*args)
            except Exception:
                log.exception("reactor call %r failed", function)

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, conn = heapq.heappop(timers)
            if when != conn.scheduled_at:
                continue  # superseded by an earlier entry
            conn.scheduled_at = float("inf")
            if conn.deadline() <= now:
                try:
                    conn.expire(now)
                except Exception:
                    log.exception("expiring %r failed", conn)
            self.update(conn)
