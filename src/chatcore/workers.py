"""The worker pool: threads that serve connections' requests, each connection's in order.

A connection with work is queued once; one worker at a time runs its tasks, so a session's
requests keep their order while different sessions run in parallel. Handlers may block (a
password hash, a backlog waiting for the client to read): the pool grows while every worker
is busy, up to ``maximum``, and threads beyond ``minimum`` end after ``idle`` seconds without
work, so idle connections cost no thread at all.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Optional, Protocol

log = logging.getLogger(__name__)


class Runnable(Protocol):
    def serve(self) -> None:
        """Run some of this connection's queued tasks; it re-submits itself if more remain."""


class WorkerPool:
    """Elastic threads taking runnable connections from one queue."""

    def __init__(self, minimum: int = 4, maximum: int = 128, idle: float = 10.0, name: str = "chatcore-worker") -> None:
        self.minimum, self.maximum, self.idle = max(1, minimum), max(1, minimum, maximum), idle
        self._name = name
        self._queue: queue.SimpleQueue[Optional[Runnable]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # workers waiting for work
        self._counter = 0
        self._stopping = False

    def start(self) -> None:
        with self._lock:
            for _ in range(self.minimum):
                self._spawn()
            self._idle += self.minimum

    def submit(self, work: Runnable) -> None:
        """Queue ``work``; start another worker when none is free and the pool may grow."""
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # this submission claims a waiting worker
            elif len(self._threads) < self.maximum and not self._stopping:
                self._spawn()
        self._queue.put(work)

    @property
    def size(self) -> int:
        """Worker threads alive now."""
        with self._lock:
            return len(self._threads)

    def _spawn(self) -> None:
        """Start one worker (lock held); it counts as busy with the submission that made it."""
        self._counter += 1
        thread = threading.Thread(target=self._work, name=f"{self._name}-{self._counter}", daemon=True)
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                work = self._queue.get(timeout=self.idle)
            except queue.Empty:
                with self._lock:
                    # a submission may have claimed this worker just as its wait ran out
                    if len(self._threads) > self.minimum and self._idle > 0 and self._queue.empty():
                        self._idle -= 1
                        self._threads.discard(me)
                        return
                continue
            if work is None:
                with self._lock:
                    self._threads.discard(me)
                return
            try:
                work.serve()
            except Exception:  # serve handles its own failures; this is the last line of defence
                log.exception("a worker's task failed")
            with self._lock:
                self._idle += 1

    def stop(self, timeout: float = 5.0) -> list[str]:
        """End every worker once the queued work is done; the names of any still busy after ``timeout``."""
        with self._lock:
            self._stopping = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(timeout)
        return [t.name for t in threads if t.is_alive()]
