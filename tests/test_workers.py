"""The worker pool and the memory trim, on real threads: a blocked pool grows, a busy one does
not, order within a connection is kept, and a quiet burst gives its memory back."""

from __future__ import annotations

import platform
import threading

import pytest

from chatcore.memory import IdleTrim
from chatcore.workers import WorkerPool


class Task:
    """Work that records when it ran and may block until released."""

    def __init__(self, log: list[str], name: str, gate: threading.Event | None = None) -> None:
        self.log, self.name, self.gate = log, name, gate
        self.done = threading.Event()

    def serve(self) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        self.log.append(self.name)
        self.done.set()


def test_a_pool_whose_workers_are_all_blocked_grows_and_serves_the_rest():
    pool = WorkerPool(minimum=1, maximum=3, grow_after=0.02)
    pool.start()
    gate, log = threading.Event(), []
    try:
        stuck = [Task(log, f"stuck{i}", gate) for i in range(2)]
        free = Task(log, "free")
        for task in (*stuck, free):
            pool.submit(task)
        assert free.done.wait(5), "the pool never grew past its blocked workers"
        assert pool.size == 3 and log == ["free"]
    finally:
        gate.set()
        assert pool.stop() == []
    assert sorted(log) == ["free", "stuck0", "stuck1"]


def test_a_busy_pool_does_not_grow_and_its_workers_end_at_stop():
    pool = WorkerPool(minimum=2, maximum=8, grow_after=2.0)  # far longer than 2,000 quick tasks take
    pool.start()
    log: list[str] = []
    tasks = [Task(log, str(i)) for i in range(2000)]
    for task in tasks:
        pool.submit(task)
    assert all(task.done.wait(5) for task in tasks)
    assert pool.size == 2  # never blocked: no reason to grow
    assert pool.stop() == [] and pool.size == 0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_memory_is_given_back_once_a_burst_is_quiet_and_not_while_busy():
    busy = [True]
    trim = IdleTrim(lambda: busy[0], quiet=0.05)
    trim.quiet()
    assert not trim.trimmed.wait(0.3) and trim.trims == 0  # still busy at the end of the quiet
    busy[0] = False
    trim.quiet()
    assert trim.trimmed.wait(5) and trim.trims == 1
    trim.cancel()
