"""The backlog loop against sessions whose send queue the test drains frame by frame: what
counts as delivered when a session closes mid-page, a client that stops reading, live
messages held during a backlog. Real SQLite and writer; only the session is a stand-in."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from chatcore import protocol
from chatcore_chat import store
from chatcore_chat.backlog import Backlog, Paging
from chatcore_chat.delivery import Relay, session_state
from chatcore_chat.writer import Operation, Writer

WAIT = 5.0


class QueueSession:
    """A session whose queue empties only when the test says so (``drain``); ``waiting`` is the
    ``below`` of the ``wait_drained`` call the backlog loop is blocked in, if any."""

    def __init__(self, id_: int, user: str, v2: bool = True) -> None:
        self.id, self.user, self.v2 = id_, user, v2
        self.state: dict = {}
        self.closed = False
        self.queue: list[bytes] = []  # frames not yet "taken by the kernel"
        self.got: list[dict] = []  # frames that left the queue, decoded
        self.waiting: int | None = None
        self.changed = threading.Condition()

    @property
    def pending(self) -> int:
        return sum(len(frame) for frame in self.queue)

    def send_frame(self, frame: bytes) -> bool:
        with self.changed:
            if self.closed:
                return False
            self.queue.append(frame)
            self.changed.notify_all()
            return True

    def wait_drained(self, below: int = 0, timeout: float | None = None) -> bool:
        with self.changed:
            self.waiting = below
            self.changed.notify_all()
            try:
                self.changed.wait_for(lambda: self.closed or self.pending <= below, timeout)
            finally:
                self.waiting = None
            return not self.closed and self.pending <= below

    def drain(self, frames: int) -> None:
        with self.changed:
            for _ in range(frames):
                self.got.append(protocol.decode(self.queue.pop(0)))
            self.changed.notify_all()

    def close(self, reason: str = "") -> None:
        with self.changed:
            self.closed = True
            self.queue.clear()
            self.changed.notify_all()

    def until(self, predicate) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, WAIT), "the backlog loop never got there"


class Directory:
    def __init__(self, *sessions) -> None:
        self.sessions = list(sessions)

    def of_user(self, name: str) -> list:
        return [s for s in self.sessions if s.user.casefold() == name.casefold()]

    def authenticated(self) -> list:
        return list(self.sessions)


@pytest.fixture
def relay(tmp_path: Path):
    conn = store.connect(tmp_path / store.FILENAME)
    store.create_schema(conn)
    writer = Writer(conn)
    writer.start()
    yield Relay(writer, Directory(), clock=lambda: 1.0)
    writer.stop()


def post_offline(relay: Relay, count: int) -> list[int]:
    """``count`` messages from alice stored for bob, who is offline."""
    sender = QueueSession(99, "alice")
    session_state(sender).ready = True
    return [relay.post(sender, "alice", "bob", f"m{n}").wait(WAIT).id for n in range(count)]


def delivered_ids(session: QueueSession) -> list[int]:
    return [m["id"] for m in session.got if m.get("offline")]


def in_thread(backlog: Backlog, session: QueueSession) -> threading.Thread:
    thread = threading.Thread(target=backlog.deliver, args=(session,), daemon=True)
    thread.start()
    return thread


def settle(relay: Relay) -> None:
    """Return once everything submitted so far (a restore, say) has committed."""
    relay.writer.submit(Operation()).wait(WAIT)


def read_through(session: QueueSession, loop: threading.Thread) -> None:
    """Read every page as the loop queues it, until the session is ready and the loop done."""
    while True:
        session.until(lambda: session_state(session).ready or (session.queue and session.waiting is not None))
        if session_state(session).ready:
            break
        session.drain(len(session.queue))
    loop.join(WAIT)
    assert not loop.is_alive()
    session.drain(len(session.queue))


def test_a_session_closing_mid_page_gets_back_exactly_what_had_not_left_its_queue(relay):
    ids = post_offline(relay, 30)
    backlog = Backlog(relay, Paging(messages=10))
    bob = QueueSession(1, "bob")
    relay.directory.sessions.append(bob)
    loop = in_thread(backlog, bob)
    bob.until(lambda: len(bob.queue) == 10 and bob.waiting is not None)
    bob.drain(4)
    behind_the_fourth = sum(len(frame) for frame in bob.queue[1:])
    bob.until(lambda: bob.waiting == behind_the_fourth)  # the loop has seen four leave
    bob.close()
    loop.join(WAIT)
    settle(relay)
    assert delivered_ids(bob) == ids[:4]

    again = QueueSession(2, "bob")
    relay.directory.sessions = [again]
    read_through(again, in_thread(backlog, again))
    assert delivered_ids(again) == ids[4:]
    assert again.got[-1] == {"type": "offline_done", "delivered": 26, "remaining": 0}


def test_a_client_that_reads_nothing_stops_its_backlog_and_the_rest_waits(relay):
    ids = post_offline(relay, 25)
    backlog = Backlog(relay, Paging(messages=10, timeout=0.05))  # the loop's own wait, not the test's
    bob = QueueSession(1, "bob")
    relay.directory.sessions.append(bob)
    backlog.deliver(bob)  # returns once it gave up on bob: ready, one page queued
    assert session_state(bob).ready
    bob.drain(len(bob.queue))
    assert delivered_ids(bob) == ids[:10]  # the page it had been given still went out
    assert bob.got[-1] == {"type": "offline_done", "delivered": 10, "remaining": 15}

    later = QueueSession(2, "bob")
    relay.directory.sessions = [later]
    read_through(later, in_thread(Backlog(relay, Paging(messages=10)), later))
    assert delivered_ids(later) == ids[10:]
    assert later.got[-1] == {"type": "offline_done", "delivered": 15, "remaining": 0}


def test_live_messages_held_during_a_backlog_keep_their_place_in_id_order(relay):
    directory = relay.directory
    alice = QueueSession(99, "alice")
    session_state(alice).ready = True
    directory.sessions.append(alice)
    before = relay.post(alice, "alice", "bob", "while bob is away").wait(WAIT)  # pending
    phone = QueueSession(1, "bob")
    directory.sessions.append(phone)
    read_through(phone, in_thread(Backlog(relay), phone))
    assert delivered_ids(phone) == [before.id]
    laptop = QueueSession(2, "bob")  # logged in, its backlog not started yet
    directory.sessions.append(laptop)
    held = relay.post(alice, "alice", "bob", "the phone has it; held for the laptop").wait(WAIT)
    directory.sessions.remove(phone)  # the phone goes: the next one waits in the store
    stored = relay.post(alice, "alice", "bob", "nobody ready: stored for bob").wait(WAIT)
    settle(relay)
    read_through(laptop, in_thread(Backlog(relay), laptop))
    assert [(m["id"], m.get("offline", False)) for m in laptop.got if "id" in m] == \
        [(held.id, False), (stored.id, True)]
    assert before.id < held.id < stored.id


def test_the_counters_follow_every_path_that_changes_what_waits(relay, tmp_path):
    ids = post_offline(relay, 12)
    bob = QueueSession(1, "bob")
    relay.directory.sessions.append(bob)
    loop = in_thread(Backlog(relay, Paging(messages=5)), bob)
    bob.until(lambda: len(bob.queue) == 5 and bob.waiting is not None)
    bob.drain(2)
    behind_the_second = sum(len(frame) for frame in bob.queue[1:])
    bob.until(lambda: bob.waiting == behind_the_second)
    bob.close()  # two delivered, three put back, seven never claimed
    loop.join(WAIT)
    settle(relay)
    conn = sqlite3.connect(tmp_path / store.FILENAME)
    recount = conn.execute("SELECT COUNT(*), SUM(length(CAST(body AS BLOB))) FROM messages "
                           "WHERE pending_for = 'bob'").fetchone()
    assert store.pending_totals(conn, "bob") == tuple(recount) == (10, sum(len(f"m{n}") for n in range(2, 12)))
    assert delivered_ids(bob) == ids[:2]
