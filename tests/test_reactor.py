"""The reactor's loop runs on the worker pool's threads, one at a time: the thread the selector
woke serves what it read while an idle thread takes the loop over, and with no thread idle the
loop hands the work to the pool and reads on. Real threads, real sockets."""

from __future__ import annotations

import queue
import selectors
import socket
import threading
from typing import Iterator

import pytest

from chatcore.reactor import Reactor
from chatcore.workers import WorkerPool

WAIT = 10.0


class Job:
    """Work found by a read: records the thread that served it, and may block until released."""

    def __init__(self, read_by: int, gate: threading.Event | None) -> None:
        self.read_by, self.gate = read_by, gate
        self.served_by = 0
        self.started, self.done = threading.Event(), threading.Event()

    def serve(self) -> None:
        self.served_by = threading.get_ident()
        self.started.set()
        if self.gate is not None:
            self.gate.wait(WAIT)
        self.done.set()


class Line:
    """A watched socket: each byte read becomes a Job handed over on the loop's thread."""

    def __init__(self, reactor: Reactor, sock: socket.socket, jobs: "queue.Queue[Job]",
                 gate: threading.Event | None = None) -> None:
        sock.setblocking(False)
        self.reactor, self.sock, self.jobs, self.gate = reactor, sock, jobs, gate
        self.scheduled_at, self.watched = float("inf"), 0

    def readable(self) -> None:
        for _ in self.sock.recv(16):
            job = Job(threading.get_ident(), self.gate)
            assert self.reactor.leading()
            self.reactor.hand_over(job)
            self.jobs.put(job)

    def writable(self) -> None:
        pass

    def events(self) -> int:
        return selectors.EVENT_READ

    def deadline(self) -> float:
        return float("inf")

    def expire(self, now: float) -> None:
        pass


@pytest.fixture
def pool_and_reactor(request: pytest.FixtureRequest) -> Iterator[tuple[WorkerPool, Reactor]]:
    pool = WorkerPool(minimum=request.param, maximum=4, grow_after=0.05)
    pool.start()
    reactor = Reactor(pool)
    reactor.start()
    yield pool, reactor
    reactor.stop()
    assert not reactor.is_alive()
    assert pool.stop() == []


def _line(reactor: Reactor, jobs: "queue.Queue[Job]", gate: threading.Event | None = None) -> socket.socket:
    ours, theirs = socket.socketpair()
    reactor.add(Line(reactor, theirs, jobs, gate))
    return ours


@pytest.mark.parametrize("pool_and_reactor", [3], indirect=True)
def test_the_thread_that_read_a_request_serves_it_and_another_reads_on(pool_and_reactor):
    _, reactor = pool_and_reactor
    jobs: "queue.Queue[Job]" = queue.Queue()
    gate = threading.Event()
    blocking, quick = _line(reactor, jobs, gate), _line(reactor, jobs)
    try:
        blocking.send(b"a")
        held = jobs.get(timeout=WAIT)
        assert held.started.wait(WAIT)
        assert held.served_by == held.read_by  # no hand-off before the request ran
        quick.send(b"b")  # read while the first request blocks its thread
        answered = jobs.get(timeout=WAIT)
        assert answered.done.wait(WAIT) and not held.done.is_set()
        assert answered.read_by != held.read_by and answered.served_by == answered.read_by
    finally:
        gate.set()
        blocking.close()
        quick.close()
    assert held.done.wait(WAIT)


@pytest.mark.parametrize("pool_and_reactor", [1], indirect=True)
def test_with_no_thread_idle_the_loop_queues_the_work_and_reads_on(pool_and_reactor):
    pool, reactor = pool_and_reactor  # one thread: the one running the loop
    jobs: "queue.Queue[Job]" = queue.Queue()
    gate = threading.Event()
    first, second = _line(reactor, jobs, gate), _line(reactor, jobs, gate)
    try:
        first.send(b"a")
        one = jobs.get(timeout=WAIT)
        assert one.started.wait(WAIT)  # by a thread the pool grew, since the loop kept its own
        assert one.served_by != one.read_by
        second.send(b"b")
        two = jobs.get(timeout=WAIT)
        assert two.read_by == one.read_by  # the same thread still runs the loop
        assert two.started.wait(WAIT) and not one.done.is_set()
        assert pool.size >= 3
    finally:
        gate.set()
        first.close()
        second.close()
    assert one.done.wait(WAIT) and two.done.wait(WAIT)


def test_sessions_are_served_while_every_worker_is_held_in_a_handler(make_server, connect, probe):
    server = make_server(plugins=[], env={"CHATCORE_WORKERS_MIN": "1"}, extra=[("probe", probe)])
    holders = [connect(server) for _ in range(3)]
    try:
        for client in holders:
            client.send(command="hold")
            probe.held.get(timeout=WAIT)  # each hold took a thread, the pool grew for the next
        late = connect(server)  # accepted, read and answered while all three still block
        assert late.request(command="ping")["type"] == "pong"
    finally:
        probe.release.set()
    for client in holders:
        assert client.expect("hold")["released"] is True


def test_several_reactors_share_the_pool_and_end_with_the_server(make_server, connect, probe):
    server = make_server(plugins=[], env={"CHATCORE_IO_THREADS": "3", "CHATCORE_WORKERS_MIN": "1"},
                         extra=[("probe", probe)])
    holders = [connect(server) for _ in range(3)]  # one on each reactor (connections go round)
    others = [connect(server) for _ in range(3)]
    try:
        for client in holders:
            client.send(command="hold")
            probe.held.get(timeout=WAIT)
        for client in others:
            assert client.request(command="ping")["type"] == "pong"
    finally:
        probe.release.set()
    for client in holders:
        assert client.expect("hold")["released"] is True
    server.stop()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("chatcore-")]
