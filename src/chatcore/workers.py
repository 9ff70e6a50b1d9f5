"""The worker pool: threads that serve connections' requests, each connection's in order, and
take turns running the reactors' loops (``chatcore.reactor``: a reactor is work too).

A connection with work is queued once; one worker at a time runs its tasks, so a session's
requests keep their order while different sessions run in parallel. Handlers may block (a
password hash, a backlog waiting for its client to read): ``minimum`` workers cover the usual
blocking (by default twice the CPUs, at least 4: the password hashes that run at once, one
per CPU, and as many for the rest), and a supervisor adds one more whenever
work is waiting and no worker has finished anything for ``grow_after`` seconds, that is when
all of them are stuck. It does not grow the pool merely because work waits: with the GIL, more
threads would not run more Python at once, only take turns more often (a storm of 1,000 logins
grew it to 140 threads that way, for nothing). Workers beyond ``minimum`` end after ``idle_after``
seconds without work, so idle connections cost no thread at all. Nor are more kept than that:
each runnable thread beside the others makes them all trade the GIL more often (a storm of
1,000 logins cost 1.15-1.17 ms of CPU per login with 16 workers on 2 CPUs, 1.09-1.11 with 4).
The server adds one thread to both bounds for each reactor: the one running its loop.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Optional, Protocol

log = logging.getLogger(__name__)


def default_minimum() -> int:
    """Workers kept when ``CHATCORE_WORKERS_MIN`` is 0: twice the CPUs, at least 4."""
    return max(4, 2 * (os.cpu_count() or 2))


class Runnable(Protocol):
    def serve(self) -> None:
        """Run some of this connection's queued tasks; it re-submits itself if more remain."""


class WorkerPool:
    """Threads taking runnable connections from one queue, grown when they are all blocked."""

    def __init__(self, minimum: int = 4, maximum: int = 128, idle_after: float = 10.0, grow_after: float = 0.1,
                 name: str = "chatcore-worker") -> None:
        self.minimum, self.maximum = max(1, minimum), max(1, minimum, maximum)
        self.idle_after, self.grow_after = idle_after, grow_after
        self._name = name
        self._queue: queue.SimpleQueue[Optional[Runnable]] = queue.SimpleQueue()  # C-level: a cheap hand-off
        self._waiting: list[None] = []  # one entry per thread waiting for work (append and pop are atomic)
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._finished = 0  # tasks served so far: the supervisor's sign of progress
        self._counter = 0
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name=f"{name}-supervisor", daemon=True)

    def start(self) -> None:
        with self._lock:
            for _ in range(self.minimum):
                self._spawn()
        self._supervisor.start()

    def submit(self, work: Runnable) -> None:
        """Queue ``work`` for the next free worker."""
        self._queue.put(work)

    @property
    def size(self) -> int:
        """Worker threads alive now."""
        with self._lock:
            return len(self._threads)

    @property
    def idle(self) -> int:
        """Threads waiting for work now."""
        return len(self._waiting)

    @property
    def queued(self) -> int:
        """Connections waiting for a worker."""
        return self._queue.qsize()

    def _spawn(self) -> None:
        """Start one worker (lock held)."""
        self._counter += 1
        thread = threading.Thread(target=self._work, name=f"{self._name}-{self._counter}", daemon=True)
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            self._waiting.append(None)
            try:
                work = self._queue.get(timeout=self.idle_after)
            except queue.Empty:
                with self._lock:
                    if len(self._threads) > self.minimum:
                        self._threads.discard(me)
                        return
                continue
            finally:
                self._waiting.pop()
            if work is None:  # stop: the queue's end
                with self._lock:
                    self._threads.discard(me)
                return
            try:
                work.serve()
            except Exception:  # serve handles its own failures; this is the last line of defence
                log.exception("a worker's task failed")
            self._finished += 1

    def _supervise(self) -> None:
        """Every ``grow_after`` s: work waiting and no task finished since the last look means
        every worker is blocked, so add one (up to ``maximum``)."""
        finished = self._finished
        while not self._stopping.wait(self.grow_after):
            if self._queue.qsize() and self._finished == finished:
                with self._lock:
                    if len(self._threads) < self.maximum:
                        self._spawn()
            finished = self._finished

    def stop(self, timeout: float = 5.0) -> list[str]:
        """End every worker once the queued work is done; the names of any still busy after ``timeout``."""
        self._stopping.set()
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._supervisor.is_alive():
            self._supervisor.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in threads if t.is_alive()]
