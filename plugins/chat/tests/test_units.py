"""Storage, writer and delivery logic without a server or pluggy: fake sessions, real SQLite files."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from chatcore import protocol
from chatcore_chat import store
from chatcore_chat.backlog import Backlog
from chatcore_chat.delivery import Relay, Window, session_state
from chatcore_chat.faults import Refused, Throttled
from chatcore_chat.history import fit_reply
from chatcore_chat.quotas import Quotas
from chatcore_chat.store import Message
from chatcore_chat.writer import Operation, StoreClosed, Writer


class FakeSession:
    """Records decoded frames (its queue drains at once); ``fail`` makes its sends raise, like a
    session torn down mid-send."""

    def __init__(self, id_: int, user: str, v2: bool = False, fail: bool = False) -> None:
        self.id, self.user, self.v2, self.fail = id_, user, v2, fail
        self.state: dict = {}
        self.got: list[dict] = []
        self.closed = False
        self.pending = 0

    def send_frame(self, frame: bytes) -> bool:
        if self.fail:
            raise OSError("connection reset")
        if self.closed:
            return False
        self.got.append(protocol.decode(frame))
        return True

    def wait_drained(self, below: int = 0, timeout: float | None = None) -> bool:
        return not self.closed

    def close(self, reason: str = "") -> None:
        self.closed = True


class FakeDirectory:
    def __init__(self, *sessions: FakeSession) -> None:
        self.sessions = list(sessions)

    def of_user(self, name: str) -> list[FakeSession]:
        return [s for s in self.sessions if s.user.casefold() == name.casefold()]

    def authenticated(self) -> list[FakeSession]:
        return list(self.sessions)


@pytest.fixture
def db(tmp_path: Path):
    conn = store.connect(tmp_path / store.FILENAME)
    store.create_schema(conn)
    writer = Writer(conn, batch=50)
    writer.start()
    yield tmp_path / store.FILENAME, writer
    writer.stop()


def drain(writer: Writer) -> None:
    """Return once the follow-ups of everything committed so far have run (an empty operation
    submitted now lands in a later batch, and batches run one after another)."""
    writer.submit(Operation()).wait(5)


def ready(*sessions: FakeSession) -> None:
    for session in sessions:
        session_state(session).ready = True


def test_a_recipient_that_fails_skips_neither_the_others_nor_the_history(db):
    path, writer = db
    broken, fine, sender = FakeSession(1, "bob", fail=True), FakeSession(2, "bob"), FakeSession(3, "alice")
    room = [FakeSession(10 + n, f"user{n}", fail=n % 3 == 0) for n in range(9)]
    ready(broken, fine, sender, *room)
    relay = Relay(writer, FakeDirectory(broken, fine, sender, *room), clock=lambda: 1.0)
    private = relay.post(sender, "alice", "bob", "hi").wait(5)
    broadcast = relay.post(sender, "alice", "", "all").wait(5)
    drain(writer)
    assert [m["id"] for m in fine.got] == [private.id, broadcast.id]
    assert all(s.got and s.got[-1]["id"] == broadcast.id for s in room if not s.fail)
    conn = sqlite3.connect(path)
    assert store.count(conn) == 2
    assert conn.execute("SELECT COUNT(*) FROM messages WHERE pending_for IS NOT NULL").fetchone()[0] == 0


def test_when_every_session_fails_the_message_waits_for_the_next_login(db):
    path, writer = db
    gone, sender = FakeSession(1, "bob", fail=True), FakeSession(2, "alice")
    ready(gone, sender)
    directory = FakeDirectory(gone, sender)
    relay = Relay(writer, directory, clock=lambda: 1.0)
    message = relay.post(sender, "alice", "bob", "lost?").wait(5)
    drain(writer)  # the post's follow-up ran and queued the restore
    back = FakeSession(3, "Bob")
    directory.sessions = [back, sender]
    Backlog(relay).deliver(back)
    drain(writer)
    assert [(m["id"], m["offline"]) for m in back.got] == [(message.id, True)]


def test_held_messages_follow_the_offline_backlog(db):
    _, writer = db
    sender = FakeSession(1, "alice")
    ready(sender)
    directory = FakeDirectory(sender)
    relay = Relay(writer, directory, clock=lambda: 1.0)
    offline = relay.post(sender, "alice", "bob", "while away").wait(5)
    bob = FakeSession(2, "bob")  # bound but its backlog not yet sent
    directory.sessions.append(bob)
    live = relay.post(sender, "alice", "", "room, during login").wait(5)
    Backlog(relay).deliver(bob)
    drain(writer)
    assert [(m["id"], m.get("offline", False)) for m in bob.got] == [(offline.id, True), (live.id, False)]


class Exploding(Operation):
    """Writes a row, then fails: the row must go with it. Records the error ``failed`` got."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.raise_, self.answered = error or sqlite3.OperationalError("disk I/O error"), None

    def apply(self, conn, batch) -> None:
        store.insert_message(conn, "", "x", "", 1, "never stored", None)
        batch.scratch["exploded"] = True
        raise self.raise_

    def failed(self, error: BaseException) -> None:
        self.answered = error


def occupy(writer: Writer) -> threading.Event:
    """Make another thread the store's executor until the returned gate is set, so what is
    submitted meanwhile queues for the writer thread."""
    gate, holding = threading.Event(), threading.Event()

    class Hold(Operation):
        def after(self, batch) -> None:
            holding.set()
            gate.wait(5)

    threading.Thread(target=writer.submit, args=(Hold(),), daemon=True).start()
    assert holding.wait(5)
    return gate


class Note(Operation):
    """Records, in ``ran``, its ``n`` and the name of the thread that ran its follow-up."""

    def __init__(self, ran: list, n: int = 0) -> None:
        super().__init__()
        self.ran, self.n = ran, n

    def after(self, batch) -> None:
        self.ran.append((self.n, threading.current_thread().name))


def bodies(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT body FROM messages ORDER BY id")]
    finally:
        conn.close()


def test_an_operation_that_fails_is_undone_alone_and_the_rest_of_its_batch_commits(db):
    path, writer = db
    relay = Relay(writer, FakeDirectory(), clock=lambda: 1.0)
    ran = []
    commits = writer.commits
    gate = occupy(writer)  # so what follows queues up as one batch
    first = relay.post(FakeSession(1, "a"), "a", "", "before")
    boom = writer.submit(Exploding())
    later = relay.post(FakeSession(2, "b"), "b", "", "after")
    note = writer.submit(Note(ran))
    gate.set()
    with pytest.raises(sqlite3.OperationalError):
        boom.wait(5)
    assert isinstance(boom.answered, sqlite3.OperationalError)  # its failed() ran
    assert first.wait(5).text == "before" and later.wait(5).text == "after"
    note.wait(5)
    assert writer.commits == commits + 2  # the hold, then one transaction for all four
    drain(writer)
    assert ran == [(0, "chat-writer")]  # the good ones' follow-ups ran
    assert bodies(path) == ["before", "after"]  # the failing one's row went with it


def test_a_failing_commit_fails_the_whole_batch_and_the_writer_goes_on(db):
    path, writer = db

    class Violates(Operation):  # a deferred foreign key fails at COMMIT, not at the insert
        def apply(self, conn, batch) -> None:
            conn.execute("INSERT INTO child VALUES (42)")

    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    setup.execute("CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    setup.close()
    relay = Relay(writer, FakeDirectory(), clock=lambda: 1.0)
    gate = occupy(writer)
    first = relay.post(FakeSession(1, "a"), "a", "", "rolled back")
    bad = writer.submit(Violates())
    gate.set()
    for op in (first, bad):
        with pytest.raises(sqlite3.IntegrityError):
            op.wait(5)
    assert relay.post(FakeSession(1, "a"), "a", "", "kept").wait(5).text == "kept"
    assert bodies(path) == ["kept"]


def test_when_sqlite_drops_the_whole_transaction_the_others_run_again(db):
    path, writer = db

    class GivesUp(Exploding):  # as SQLite may after a full disk: the transaction is gone
        def apply(self, conn, batch) -> None:
            store.insert_message(conn, "", "x", "", 1, "never stored", None)
            conn.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")

    relay = Relay(writer, FakeDirectory(), clock=lambda: 1.0)
    gate = occupy(writer)
    first = relay.post(FakeSession(1, "a"), "a", "", "one")
    gone = writer.submit(GivesUp())
    later = relay.post(FakeSession(1, "a"), "a", "", "two")
    gate.set()
    with pytest.raises(sqlite3.OperationalError):
        gone.wait(5)
    assert [first.wait(5).text, later.wait(5).text] == ["one", "two"]
    assert bodies(path) == ["one", "two"]


def test_a_lone_operation_that_fails_leaves_nothing_behind(db):
    path, writer = db
    boom = writer.submit(Exploding(ValueError("bad row")))
    with pytest.raises(ValueError):
        boom.wait(5)
    assert bodies(path) == [] and isinstance(boom.answered, ValueError)
    assert writer.submit(Note([])).wait(5) is None


def test_a_lone_message_is_its_own_transaction_and_a_refused_one_leaves_nothing(tmp_path):
    conn = store.connect(tmp_path / store.FILENAME)
    store.create_schema(conn)
    Quotas(daily_messages=1).install(conn)
    statements: list[str] = []  # what SQLite ran: the writer's own statements and their triggers'
    conn.set_trace_callback(statements.append)
    writer = Writer(conn)
    writer.start()
    try:
        relay = Relay(writer, FakeDirectory(), clock=lambda: 1.0, quotas=Quotas(daily_messages=1))
        assert relay.post(FakeSession(1, "a"), "a", "", "stored").wait(5).text == "stored"
        assert {s.split()[0] for s in statements} == {"INSERT"}  # (once per trigger step): no BEGIN, no COMMIT
        assert bodies(tmp_path / store.FILENAME) == ["stored"]  # committed: another connection sees it
        with pytest.raises(Refused):
            relay.post(FakeSession(1, "a"), "a", "", "over the daily quota").wait(5)
        assert not conn.in_transaction and bodies(tmp_path / store.FILENAME) == ["stored"]
        gate = occupy(writer)  # several at once still share one transaction
        statements.clear()
        queued = [relay.post(FakeSession(n, f"u{n}"), f"u{n}", "", f"batched {n}") for n in (2, 3)]
        gate.set()
        assert [op.wait(5).text for op in queued] == ["batched 2", "batched 3"]
        kinds = [s.split()[0] for s in statements]
        assert kinds[0] == "BEGIN" and kinds[-1] == "COMMIT" and set(kinds[1:-1]) == {"INSERT"}
    finally:
        writer.stop()


def test_an_acknowledgement_that_cannot_be_sent_does_not_cost_the_delivery(db):
    _, writer = db
    alice, bob = FakeSession(1, "alice"), FakeSession(2, "bob")
    ready(alice, bob)
    relay = Relay(writer, FakeDirectory(alice, bob), clock=lambda: 1.0)
    # a client_id no JSON encoder can write (a lone surrogate): the ack fails, the message is stored
    message = relay.post(alice, "alice", "bob", "still delivered", ack={"peer": "bob", "client_id": "\ud800"}).wait(5)
    drain(writer)
    assert [m["id"] for m in bob.got] == [message.id]
    assert alice.got == []


def test_a_full_database_answers_storage_full_and_warns_once(tmp_path, caplog):
    conn = store.connect(tmp_path / store.FILENAME)
    store.create_schema(conn)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages + 8}")  # SQLite's own limit: SQLITE_FULL as a full disk gives
    writer = Writer(conn)
    writer.start()
    alice = FakeSession(1, "alice")
    ready(alice)
    relay = Relay(writer, FakeDirectory(alice), clock=lambda: 1.0)
    for n in range(40):
        relay.post(alice, "alice", "", "x" * 4000, ack={"peer": "", "client_id": n})
    drain(writer)
    writer.stop()
    replies = [(m["type"], m.get("code"), m["client_id"]) for m in alice.got if m["type"] in ("chat_ack", "error")]
    assert [r[2] for r in replies] == list(range(40))
    refused = [r for r in replies if r[0] == "error"]
    assert refused and {r[1] for r in refused} == {"storage_full"}
    assert [r for r in caplog.records if r.exc_info] == []
    assert len([r for r in caplog.records if "storage is full" in r.getMessage()]) == 1


def test_throttled_warnings_count_what_they_did_not_say(caplog):
    caplog.set_level(logging.INFO)
    now = [0.0]
    throttled = Throttled(logging.getLogger("test"), "disk full", "disk fine", interval=60, clock=lambda: now[0])
    for _ in range(5):
        throttled.note()
    now[0] = 61
    throttled.note()
    throttled.note()
    throttled.over()  # too soon after the last line: kept for later
    now[0] = 122
    throttled.over()
    throttled.over()
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "disk full: 1 since the last warning", "disk full: 5 since the last warning", "disk fine"]
    assert "1 more" in caplog.records[-1].getMessage()


def test_an_idle_store_runs_an_operation_in_the_submitting_thread(db):
    _, writer = db
    ran = []
    assert writer.submit(Note(ran)).wait(5) is None
    assert ran == [(0, threading.current_thread().name)]


def test_a_pipelining_connection_leaves_its_work_to_the_writer_thread(db):
    _, writer = db
    ran = []
    writer.submit(Note(ran), inline=False).wait(5)
    assert ran == [(0, "chat-writer")]


def test_queued_work_goes_to_the_writer_thread_in_order(db):
    _, writer = db
    order = []
    gate = occupy(writer)
    notes = [writer.submit(Note(order, n)) for n in range(5)]  # queued: the store is busy
    gate.set()
    for note in notes:
        note.wait(5)
    assert order == [(n, "chat-writer") for n in range(5)]


def test_a_full_queue_makes_connection_threads_wait_for_room(tmp_path):
    conn = store.connect(tmp_path / "x.sqlite3")
    store.create_schema(conn)
    writer = Writer(conn, batch=2, max_queued=2)
    writer.start()
    gate = occupy(writer)
    queued = [writer.submit(Operation(), wait=5), writer.submit(Operation(), wait=5)]
    with pytest.raises(TimeoutError):
        writer.submit(Operation(), wait=0.05)  # full: a connection thread waits, then gives up
    queued.append(writer.submit(Operation()))  # follow-ups never wait
    waited = []
    waiter = threading.Thread(target=lambda: waited.append(writer.submit(Operation(), wait=5)))
    waiter.start()
    gate.set()  # the writer takes a batch, which makes room for the waiter
    waiter.join(5)
    for op in queued + waited:
        op.wait(5)
    assert len(waited) == 1
    writer.stop()


def test_stop_waits_for_a_batch_running_in_a_submitting_thread(tmp_path):
    conn = store.connect(tmp_path / "x.sqlite3")
    store.create_schema(conn)
    writer = Writer(conn)
    writer.start()
    gate, holding = threading.Event(), threading.Event()
    finished = []

    class Hold(Operation):
        def apply(self, conn, batch) -> None:
            holding.set()
            gate.wait(5)
            conn.execute("SELECT 1").fetchall()  # the connection is still open
            finished.append(True)

    runner = threading.Thread(target=writer.submit, args=(Hold(),), daemon=True)
    runner.start()
    assert holding.wait(5)
    stopper = threading.Thread(target=writer.stop, daemon=True)
    stopper.start()
    gate.set()
    stopper.join(10)
    runner.join(10)
    assert finished == [True] and not stopper.is_alive()
    with pytest.raises(StoreClosed):
        writer.submit(Operation())


def test_submitting_after_stop_raises(tmp_path):
    conn = store.connect(tmp_path / "x.sqlite3")
    store.create_schema(conn)
    writer = Writer(conn)
    writer.start()
    writer.stop()
    with pytest.raises(StoreClosed):
        writer.submit(Operation())


def test_timestamps_never_go_backwards_along_ids(db):
    _, writer = db
    times = iter([100.0, 50.0, 200.0])
    relay = Relay(writer, FakeDirectory(), clock=lambda: next(times))
    stamps = [relay.post(FakeSession(1, "a"), "a", "", f"{n}").wait(5).ts_ms for n in range(3)]
    assert stamps == [100_000, 100_000, 200_000]


def test_conversation_key_is_symmetric_and_case_insensitive():
    assert store.conversation_key("Alice", "bob") == store.conversation_key("BOB", "alice")
    assert store.conversation_key("a", "b") != store.GLOBAL_ROOM


def test_iso_utc():
    assert protocol.timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert protocol.timestamp(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"


def test_fit_reply_never_exceeds_the_budget():
    big = [Message(n, "", "alice", "", 0, "\x01" * 4000) for n in range(10, 0, -1)]
    for v2 in (False, True):
        reply = fit_reply("", big, more=False, v2=v2)
        assert len(protocol.dumps(reply)) <= protocol.MAX_JSON
        items = reply["messages" if v2 else "data"]
        assert len(items) == 2 and reply["has_more"] and reply["next_before"] == 9
    small = fit_reply("", big[:1], more=False, v2=True)
    assert small["has_more"] is False and "next_before" not in small
    tiny = fit_reply("", big, more=False, v2=True, max_bytes=200)
    assert tiny["messages"] == [] and tiny["has_more"]


def test_schema_from_the_future_is_refused(tmp_path):
    conn = store.connect(tmp_path / "x.sqlite3")
    conn.execute("PRAGMA user_version=99")
    with pytest.raises(RuntimeError, match="newer"):
        store.create_schema(conn)


def test_readme_documents_every_setting_and_hook():
    from chatcore_chat import hookspecs, settings
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for setting in settings.ALL:
        assert f"`{setting.name}`" in readme, setting.name
    hooks = [name for name in dir(hookspecs) if name.startswith("chatcore_chat_")]
    assert hooks
    for name in hooks:
        assert f"`{name}(" in readme, name


def test_the_in_flight_window_holds_a_sender_back_until_a_slot_frees():
    window = Window(2)
    assert window.acquire(0) and window.acquire(0)
    assert not window.acquire(0.01)  # full: times out
    got = []
    waiter = threading.Thread(target=lambda: got.append(window.acquire(5)))
    waiter.start()
    window.release()  # wakes the waiter
    waiter.join(5)
    assert got == [True] and not window.acquire(0)
    window.release()
    window.release()
    with pytest.raises(ValueError):
        window.release()


def test_paused_holds_writes_back_until_the_block_ends(db):
    _, writer = db
    ran = []
    with writer.paused():
        note = writer.submit(Note(ran))  # queued, not run here: the store is paused
        assert ran == []
    note.wait(5)
    assert ran == [(0, "chat-writer")]


def long_wal(tmp_path, messages: int = 200):
    """A store whose WAL holds ``messages`` single-message commits (~4 frames each)."""
    path = tmp_path / "x.sqlite3"
    writer = store.connect(path, autocheckpoint=False)
    store.create_schema(writer)
    for n in range(messages):
        store.insert_message(writer, "a\nb", "a", "b", n, "x" * 500, None)
    return path, writer


def test_a_long_wal_starts_over_once_the_checkpointer_catches_up(tmp_path):
    path, writer = long_wal(tmp_path)
    wal = Path(f"{path}-wal")
    size = wal.stat().st_size
    assert size > 100 * 4096
    held = []
    checkpointer = store.Checkpointer(path, restart_frames=50, hold_writes=lambda: held.append(1) or contextlib.nullcontext())
    reader = sqlite3.connect(path, isolation_level=None)
    assert checkpointer.checkpoint(reader) == "caught up" and held == []  # writers never held
    store.insert_message(writer, "a\nb", "a", "b", 999, "after", None)
    assert wal.stat().st_size == size  # the next commit wrote over the start of the file
    assert checkpointer.checkpoint(reader) is None  # short WAL now
    assert reader.execute("SELECT count(*) FROM messages").fetchone()[0] == 201
    writer.close()
    reader.close()


class _WriterAheadConnection:
    """Stands in for the checkpointer's connection while writers stay ahead: every passive
    round reports ``growth`` more frames than the last, as on a busy server; a reader keeps
    the last ``kept`` frames from being copied."""

    def __init__(self, frames: int, growth: int = 300, kept: int = 0) -> None:
        self.frames, self.growth, self.kept, self.statements = frames, growth, kept, []

    def execute(self, sql: str):
        self.statements.append(sql)
        if "PASSIVE" in sql:
            self.frames += self.growth
        frames, copied = self.frames, self.frames - self.kept

        class Result:
            def fetchone(self):
                return (0, frames, copied)

            def fetchall(self):
                return [self.fetchone()]

        return Result()


def test_the_last_few_frames_are_copied_with_writes_held_so_the_wal_starts_over(tmp_path):
    during: list[int] = []  # statements run so far, as the hold began and ended
    conn = _WriterAheadConnection(frames=900, growth=100)  # 100 new frames a round: under hold_frames

    @contextlib.contextmanager
    def hold_writes():
        during.append(len(conn.statements))
        yield
        during.append(len(conn.statements))

    checkpointer = store.Checkpointer(tmp_path / "x.sqlite3", restart_frames=1000, hold_writes=hold_writes, hold_frames=256)
    assert checkpointer.checkpoint(conn) == "held"
    assert during == [2, 3] and conn.statements == ["PRAGMA wal_checkpoint(PASSIVE)"] * 3  # the third round, held
    assert checkpointer.restarts == 0
    conn = _WriterAheadConnection(frames=900, growth=100, kept=50)  # a reader needs the last 50 frames
    during.clear()
    assert checkpointer.checkpoint(conn) == "behind" and during == [2, 3]  # held once, then left to later rounds
    assert checkpointer.restarts == 0


def test_writers_that_keep_ahead_are_held_for_a_restart_only_past_the_hard_limit(tmp_path):
    held = []

    @contextlib.contextmanager
    def hold_writes():
        held.append(1)
        yield

    checkpointer = store.Checkpointer(tmp_path / "x.sqlite3", restart_frames=1000, hold_writes=hold_writes)
    assert checkpointer.checkpoint(_WriterAheadConnection(frames=900)) == "behind"  # 9 rounds: 1,200 -> 3,600 frames
    assert held == [] and checkpointer.restarts == 0  # 300 new frames a round: too many to copy with writes held
    busy = _WriterAheadConnection(frames=3500)  # 9 rounds: 3,800 -> 6,200 frames, past 4 x 1,000
    assert checkpointer.checkpoint(busy) == "restarted"
    assert held == [1] and checkpointer.restarts == 1 and busy.statements[-1] == "PRAGMA wal_checkpoint(RESTART)"
