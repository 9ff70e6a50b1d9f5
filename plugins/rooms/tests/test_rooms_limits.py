"""Chat's limits on room messages, over the real wire: the per-sender daily quotas
(``CHATCORE_CHAT_SENDER_DAILY_*``: ``daily_quota`` with ``retry_after``, no gap in the room's
sequence, kept across a restart) and retention (``CHATCORE_CHAT_RETENTION_*``: old room
messages deleted with their mentions and pins, history starting later, sequence numbers
going on, unread counts at login counting only what is left). Clocks are injected, sweeps run
by hand: nothing sleeps."""

from __future__ import annotations

import sqlite3

import pytest

from chatcore.testing import FakeClock
from chatcore_chat.plugin import ChatPlugin
from chatcore_rooms import schema
from chatcore_rooms.plugin import RoomsPlugin

DAY = 86400.0

pytestmark = pytest.mark.usefixtures("backend")  # each test runs on SQLite and on PostgreSQL (conftest)


def clocked(rooms_server, clock, **env):
    """auth + chat + rooms, both stores on ``clock``; the background sweep is a day away."""
    rooms = RoomsPlugin(clock=clock)
    server = rooms_server(plugins=["auth"], extra=[("chat", ChatPlugin(clock=clock)), ("rooms", rooms)],
                          env={"CHATCORE_CHAT_RETENTION_INTERVAL": "86400", **env})
    return server, rooms.service


def dev_with(server, user, kit, *names):
    """alice owns #dev; the others joined it; everything sent so far is read."""
    clients = [user(server, name) for name in ("alice", *names)]
    kit.ask(clients[0], "room_create", room="dev")
    for client in clients[1:]:
        kit.ask(client, "room_join", room="dev")
    kit.settle(server)
    for client in clients:
        client.sync()
    return clients


def seqs(reply: dict) -> list[int]:
    return [m["seq"] for m in reply["messages"]]


def test_room_messages_count_against_the_senders_daily_quota(rooms_server, user, kit, login_as):
    clock = FakeClock()  # 80,000 s into a UTC day
    server, _ = clocked(rooms_server, clock, CHATCORE_CHAT_SENDER_DAILY_MESSAGES="3")
    alice, bob = dev_with(server, user, kit, "bob")
    assert [kit.post(alice, "dev", f"m{n}")["seq"] for n in range(3)] == [1, 2, 3]
    refused = kit.post(alice, "dev", "fourth", client_id="c4")
    assert refused["code"] == "daily_quota" and refused["command"] == "room_message"
    assert refused["retry_after"] == 6400 and refused["client_id"] == "c4"
    assert "nothing was stored" in refused["reason"]
    assert kit.post(bob, "dev", "a quota per sender")["seq"] == 4  # the refusal left no gap
    clock.advance(6400)  # the next UTC day
    assert kit.post(alice, "dev", "a new day")["seq"] == 5
    assert seqs(kit.ask(bob, "room_history", room="dev")) == [1, 2, 3, 4, 5]


def test_the_daily_byte_quota_and_its_count_survive_a_restart(rooms_server, user, kit):
    env = {"CHATCORE_CHAT_SENDER_DAILY_BYTES": "10"}
    clock = FakeClock()
    server, _ = clocked(rooms_server, clock, **env)
    (alice,) = dev_with(server, user, kit)
    assert kit.post(alice, "dev", "123456")["seq"] == 1
    assert kit.post(alice, "dev", "12345")["code"] == "daily_quota"  # 11 bytes > 10
    assert kit.post(alice, "dev", "1234")["seq"] == 2  # exactly 10
    server.stop()
    server, _ = clocked(rooms_server, clock, **env)  # the same data directory
    alice = user(server, "alice", register=False)
    refused = kit.post(alice, "dev", "x")
    assert refused["code"] == "daily_quota" and "10 bytes" in refused["reason"]
    assert kit.query(server, "SELECT sender, messages, bytes FROM sender_days") == [("alice", 2, 10)]


def test_retention_by_age_deletes_old_room_messages_and_what_hung_on_them(rooms_server, user, kit):
    clock = FakeClock()
    server, service = clocked(rooms_server, clock, CHATCORE_CHAT_RETENTION_DAYS="1.5")
    alice, bob = dev_with(server, user, kit, "bob")
    kit.post(alice, "dev", "old news @bob")
    kit.post(alice, "dev", "old pin")
    assert kit.ask(alice, "room_pin", room="dev", seq=2)["type"] == "room_pin_result"
    kit.ask(bob, "room_react", room="dev", seq=2, emoji="👍")
    clock.advance(DAY)
    kit.post(alice, "dev", "one day old")
    clock.advance(DAY)
    kit.post(alice, "dev", "fresh @bob")
    bob.close()
    assert service.retention.sweep() == 2
    assert service.retention.sweep() == 0
    history = kit.ask(alice, "room_history", room="dev")
    assert seqs(history) == [3, 4] and history["has_more"] is False  # the history starts later
    assert kit.ask(alice, "room_history", room="dev", before=3)["messages"] == []
    assert kit.ask(alice, "room_pins", room="dev")["messages"] == []
    assert "pins" not in kit.ask(alice, "room_directory")["rooms"][0]
    assert kit.post(alice, "dev", "after the sweep")["seq"] == 5  # sequence numbers go on
    bob = user(server, "bob", register=False)
    (dev,) = bob.room_list["rooms"]
    assert (dev["last_seq"], dev["unread"], dev["mentions"]) == (5, 3, 1)  # only what is left counts
    assert kit.query(server, "SELECT COUNT(*) FROM reactions") == [(0,)]
    assert kit.query(server, "SELECT room_id, seq FROM mentions") == [(1, 4)]
    assert kit.ask(bob, "search", query="news")["results"] == []  # its words left the index
    assert [r["message"] for r in kit.ask(bob, "search", query="fresh")["results"]] == ["fresh @bob"]


def test_retention_by_count_keeps_the_newest_of_each_room(rooms_server, user, kit):
    clock = FakeClock()
    server, service = clocked(rooms_server, clock, CHATCORE_CHAT_RETENTION_COUNT="3")
    alice, bob = dev_with(server, user, kit, "bob")
    kit.ask(alice, "room_create", room="ops")
    for n in range(1005):  # more than two delete chunks
        kit.post(alice, "dev", f"d{n}")
    for n in range(2):
        kit.post(alice, "ops", f"o{n}")
    alice.send(command="chat", peer="bob", message="a private message is chat's to keep")
    alice.expect("chat_ack")
    assert service.retention.sweep() == 1002
    dev = kit.ask(bob, "room_history", room="dev")
    assert seqs(dev) == [1003, 1004, 1005] and not dev["has_more"]
    assert seqs(kit.ask(alice, "room_history", room="ops")) == [1, 2]
    assert kit.post(bob, "dev", "next")["seq"] == 1006


@pytest.mark.sqlite_only
def test_a_schema_2_database_gets_the_counts_of_today_at_upgrade(tmp_path):
    path = tmp_path / schema.FILENAME
    conn = sqlite3.connect(path, isolation_level=None)
    schema.create_schema(conn)
    conn.executescript("DROP TRIGGER sender_on_insert; DROP TABLE sender_days; DROP INDEX messages_ts;"
                       "PRAGMA user_version=2;")
    now_ms = 1_700_000_000_000
    conn.execute("INSERT INTO rooms (key, name, topic, private, history, created_by, created_ts) "
                 "VALUES ('dev', 'dev', '', 0, 'shared', 'alice', 0)")
    for seq, ts, body in ((1, now_ms - 100_000_000, "yesterday"), (2, now_ms - 1000, "today"), (3, now_ms, "now")):
        conn.execute("INSERT INTO messages (room_id, seq, sender, sender_key, ts, body, mentions, everyone) "
                     "VALUES (1, ?, 'Alice', 'alice', ?, ?, '', 0)", (seq, ts, body))
    schema.create_schema(conn, now_ms=now_ms)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 4
    assert conn.execute("SELECT sender, messages, bytes FROM sender_days").fetchall() == [("alice", 2, 8)]
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_ts'").fetchone()
    conn.close()
