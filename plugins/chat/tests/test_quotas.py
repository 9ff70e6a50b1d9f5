"""Bounds on what is stored: per offline recipient, per sender per UTC day; counts exact across
refusals, pipelined batches, restarts and a schema-1 database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chatcore import protocol
from chatcore_chat import store
from chatcore_chat.plugin import ChatPlugin

pytestmark = pytest.mark.usefixtures("backend")  # runs on SQLite and on PostgreSQL

DAY = 86400.0


def replies(client, n: int) -> list[dict]:
    return [client.expect(("chat_ack", "error")) for _ in range(n)]


def pipeline(client, peer: str, texts: list[str]) -> None:
    client.send_raw(b"".join(protocol.encode({"command": "chat", "peer": peer, "message": text, "client_id": f"c{n}"})
                             for n, text in enumerate(texts)))


def test_a_full_recipient_refuses_with_recipient_full_and_stores_nothing(chat_server, login_as, register, chat,
                                                                         history, settle):
    server = chat_server(env={"CHATCORE_CHAT_PENDING_MAX_MESSAGES": "3"})
    register(server, "bob")
    register(server, "dave")
    alice = login_as(server, "alice")
    acks = [chat(alice, "bob", f"m{n}") for n in range(3)]
    refused = chat(alice, "bob", "one too many", client_id="c-9")
    assert refused["type"] == "error" and refused["code"] == "recipient_full" and refused["command"] == "chat"
    assert refused["client_id"] == "c-9" and "bob" in refused["reason"] and "nothing was stored" in refused["reason"]
    assert chat(alice, "dave", "dave has room")["type"] == "chat_ack"  # a cap per recipient
    assert [d[2] for d in history(alice, "bob")["data"]] == ["m0", "m1", "m2"]

    bob = login_as(server, "bob", register=False)
    assert [m["id"] for m in settle(server, bob) if m.get("offline")] == [a["id"] for a in acks]
    assert chat(alice, "bob", "live: not stored for later")["type"] == "chat_ack"
    bob.close()
    settle(server)
    assert chat(alice, "bob", "room again")["type"] == "chat_ack"  # delivered messages no longer count


def test_the_recipient_byte_cap_counts_utf8_bytes(chat_server, login_as, register, chat):
    server = chat_server(env={"CHATCORE_CHAT_PENDING_MAX_BYTES": "10K"})
    register(server, "bob")
    alice = login_as(server, "alice")
    assert chat(alice, "bob", "é" * 4000)["type"] == "chat_ack"  # 8,000 bytes
    refused = chat(alice, "bob", "é" * 1200)  # 2,400 more: past 10,240
    assert refused["code"] == "recipient_full" and "10240" in refused["reason"]
    assert chat(alice, "bob", "x" * 2240)["type"] == "chat_ack"  # exactly up to the limit


@pytest.mark.sqlite_only  # seeds or reads the SQLite file
def test_refusals_in_one_batch_answer_each_message_and_spare_the_others(chat_server, login_as, register, settle,
                                                                      writer_held):
    server = chat_server(env={"CHATCORE_CHAT_PENDING_MAX_MESSAGES": "5", "CHATCORE_CHAT_SENDER_DAILY_MESSAGES": "12"})
    register(server, "bob")
    alice = login_as(server, "alice")
    carol = login_as(server, "carol")
    dave = login_as(server, "dave")
    with writer_held(server):  # all 28 messages queue up and commit as one transaction
        pipeline(alice, "bob", [f"a{n}" for n in range(8)])
        alice.backlog = alice.sync()
        pipeline(carol, "dave", [f"c{n}" for n in range(20)])
        carol.backlog = carol.sync()
    mine = replies(alice, 8)
    assert [r["type"] for r in mine[:5]] == ["chat_ack"] * 5
    assert [(r["code"], r["client_id"]) for r in mine[5:]] == [("recipient_full", f"c{n}") for n in range(5, 8)]
    theirs = replies(carol, 20)
    assert [r["type"] for r in theirs[:12]] == ["chat_ack"] * 12
    assert [(r["code"], r["client_id"]) for r in theirs[12:]] == [("daily_quota", f"c{n}") for n in range(12, 20)]
    assert [m["message"] for m in settle(server, dave) if m.get("type") == "private_message"] == \
        [f"c{n}" for n in range(12)]
    conn = sqlite3.connect(server.data_dir / "chat" / store.FILENAME)
    assert store.pending_totals(conn, "bob") == (5, 10)  # refused messages left no trace in the counts
    assert conn.execute("SELECT sender, messages, bytes FROM sender_days ORDER BY sender").fetchall() == \
        [("alice", 5, 10), ("carol", 12, 10 * 2 + 2 * 3)]
    conn.close()


def test_the_daily_quota_says_when_to_retry_survives_a_restart_and_resets_at_utc_midnight(chat_server, clock,
                                                                                         login_as, chat):
    env = {"CHATCORE_CHAT_SENDER_DAILY_MESSAGES": "3"}
    start = lambda: chat_server(plugins=["auth"], extra=[("chat-on-a-fake-clock", ChatPlugin(clock=clock))],  # noqa: E731
                                env=env)
    server = start()
    alice = login_as(server, "alice")
    login_as(server, "bob")
    assert [chat(alice, "bob" if n % 2 else "", f"{n}")["type"] for n in range(3)] == ["chat_ack"] * 3
    refused = chat(alice, "bob", "fourth", client_id=4)
    seconds_left = DAY - clock.now % DAY  # the clock starts 80,000 s into a UTC day
    assert refused["code"] == "daily_quota" and refused["retry_after"] == seconds_left == 6400
    assert refused["client_id"] == 4
    assert chat(login_as(server, "carol"), "", "a quota per sender")["type"] == "chat_ack"
    server.stop()

    server = start()  # the same data directory: the day's count is stored, not in memory
    alice = login_as(server, "alice", register=False)
    assert chat(alice, "", "still today")["code"] == "daily_quota"
    clock.advance(seconds_left)
    assert chat(alice, "", "a new day")["type"] == "chat_ack"


V1_SCHEMA = """
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, conv TEXT NOT NULL, sender TEXT NOT NULL,
    recipient TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL, pending_for TEXT);
CREATE INDEX messages_conv ON messages (conv, id);
CREATE INDEX messages_ts ON messages (ts);
CREATE INDEX messages_pending ON messages (pending_for, id) WHERE pending_for IS NOT NULL;
PRAGMA user_version=1;
"""


def schema_1_database(path: Path, now_ms: int) -> None:
    """A database as version 1 of the plugin left it: bob has 4 messages waiting (one with
    two-byte characters), carol 1; alice sent 3 messages today and 2 yesterday."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    today, yesterday = now_ms - 1000, now_ms - int(DAY * 1000)
    rows = [("Alice", "Bob", yesterday, "old, delivered", None), ("Alice", "Bob", yesterday, "old, waiting", "bob"),
            ("Alice", "Bob", today, "héllo", "bob"), ("ALICE", "Bob", today, "x" * 10, "bob"),
            ("carol", "Bob", today, "from carol", "bob"), ("Alice", "carol", today, "hi carol", "carol")]
    conn.executemany("INSERT INTO messages (conv, sender, recipient, ts, body, pending_for) VALUES (?, ?, ?, ?, ?, ?)",
                     [(store.conversation_key(s, r), s, r, ts, body, p) for s, r, ts, body, p in rows])
    conn.commit()
    conn.close()


def test_a_schema_1_database_is_upgraded_with_exact_counts(tmp_path):
    path = tmp_path / store.FILENAME
    now_ms = 1_700_000_000_000
    schema_1_database(path, now_ms)
    conn = store.connect(path)
    store.create_schema(conn, now_ms)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == 4
    assert store.pending_totals(conn, "bob") == (4, len("old, waiting") + len("héllo".encode()) + 10 + len("from carol"))
    assert store.pending_totals(conn, "carol") == (1, 8)
    assert conn.execute("SELECT sender, day, messages, bytes FROM sender_days ORDER BY sender").fetchall() == [
        ("alice", now_ms // 86_400_000, 3, 6 + 10 + 8), ("carol", now_ms // 86_400_000, 1, 10)]
    store.create_schema(conn, now_ms)  # opening it again changes nothing
    assert store.pending_totals(conn, "bob")[0] == 4
    conn.close()


@pytest.mark.sqlite_only  # seeds or reads the SQLite file
def test_a_server_on_a_schema_1_database_enforces_the_caps_from_its_counts(chat_server, clock, login_as, register,
                                                                         chat, tmp_path):
    schema_1_database(tmp_path / "data" / "chat" / store.FILENAME, int(clock.now * 1000))
    server = chat_server(plugins=["auth"], extra=[("chat-on-a-fake-clock", ChatPlugin(clock=clock))],
                         env={"CHATCORE_CHAT_PENDING_MAX_MESSAGES": "5", "CHATCORE_CHAT_SENDER_DAILY_MESSAGES": "5"})
    register(server, "bob")  # offline: his 4 stay waiting
    server_alice = login_as(server, "alice")
    carol = login_as(server, "carol")
    assert chat(carol, "", "carol's second today")["type"] == "chat_ack"
    assert chat(server_alice, "", "alice's fourth today")["type"] == "chat_ack"
    assert chat(server_alice, "", "alice's fifth")["type"] == "chat_ack"
    assert chat(server_alice, "", "alice's sixth")["code"] == "daily_quota"
    assert chat(carol, "bob", "bob's fifth waiting")["type"] == "chat_ack"
    assert chat(carol, "bob", "bob's sixth")["code"] == "recipient_full"
