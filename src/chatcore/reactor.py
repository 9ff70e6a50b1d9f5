"""The reactor: one selector reading many connections, with their deadlines, run by the
worker pool's threads one at a time (leader/followers).

The thread running the loop (the leader) reads what each socket has and lets the connection
cut it into frames. When a turn leaves a connection with work and another pool thread is
idle, the idle thread takes the loop over and the leader serves that connection itself, so a
request runs on the thread the selector woke, with no hand-off to another thread before it
(p50 at 1,000 msg/s 0.40-0.43 ms against 0.45-0.48 with a reactor thread of its own). With no
thread idle it hands the work to the pool and goes on reading, so a handler that blocks never
stops the reading. Other threads reach the loop only through ``call``, which runs a function
on whichever thread leads (the selector and the timers are not shared).
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
from typing import Any, Callable, Optional, Protocol

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


class Pool(Protocol):
    """What the reactor needs of the worker pool that runs it."""

    @property
    def idle(self) -> int: ...

    def submit(self, work: Any) -> None: ...


class Reactor:
    """A selector loop over connections, with a heap of their deadlines, run by one pool
    thread at a time (its leader)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._leader: Optional[int] = None  # the ident of the thread running the loop now
        self._ready: list[Any] = []  # work found this turn, for the pool (or this thread) at its end
        self._started = False
        self._left = threading.Event()  # the loop ended for good
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
        """Run ``function(*args)`` on the loop's thread (whichever leads), soon."""
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

    def start(self) -> None:
        """Give the loop to a pool thread."""
        self._started = True
        self._pool.submit(self)

    def is_alive(self) -> bool:
        """Started and its loop not ended yet (a pool thread runs it, or will)."""
        return self._started and not self._left.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop (waiting up to ``timeout`` for the thread running it) and close the selector."""
        self._stopping = True
        self.call(lambda: None)
        if self._started:
            self._left.wait(timeout)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- on the loop's thread ------------------------------------------------------------------

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

    def leading(self) -> bool:
        """True on the thread running the loop now."""
        return self._leader == threading.get_ident()

    def hand_over(self, work: Any) -> None:
        """On the loop: ``work`` is runnable; it goes to the pool, or to this thread, at the turn's end."""
        self._ready.append(work)

    def serve(self) -> None:
        """Run the loop on this pool thread until it hands the loop to another (or stops)."""
        me = threading.get_ident()
        self._leader = me
        try:
            while not self._stopping:
                self._turn()
                if self._ready and self._handed_off():
                    return
        finally:
            if self._leader == me:
                self._leader = None
                if self._stopping:
                    self._left.set()
                else:  # an error ended the loop on this thread: another one reads on
                    self._pool.submit(self)

    def _handed_off(self) -> bool:
        """The turn found work: with a pool thread idle, give it the loop and serve the first
        work here (True); with none, queue the work for the pool and keep the loop (False)."""
        ready, self._ready = self._ready, []
        if not self._pool.idle:
            for work in ready:
                self._pool.submit(work)
            return False
        self._leader = None
        self._pool.submit(self)
        for work in ready[1:]:
            self._pool.submit(work)
        ready[0].serve()
        return True

    def _turn(self) -> None:
        """Wait for the next socket events, calls or deadline, and handle them."""
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
